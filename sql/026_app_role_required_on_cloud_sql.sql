-- 026: on Cloud SQL the functions' users reach the data only through the
-- cartcast_app role of the deployment's bootstrap (README, "Deploy"). 024 did
-- nothing when that role was missing, and was recorded as applied all the same:
-- a deployment whose bootstrap was skipped got functions that could read no
-- table. Here a missing role on Cloud SQL stops the migrations with what to do;
-- where the role exists, its rights are granted again (024 may have found none to
-- grant). A local server or the tests (no Cloud SQL settings, no cartcast_app)
-- are left as they are: one user does everything there.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cartcast_app') THEN
        GRANT USAGE ON SCHEMA public TO cartcast_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public
            TO cartcast_app;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO cartcast_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cartcast_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT USAGE, SELECT ON SEQUENCES TO cartcast_app;
    ELSIF current_setting('cloudsql.iam_authentication', true) IS NOT NULL
        OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cloudsqlsuperuser')
    THEN
        RAISE EXCEPTION 'the role cartcast_app does not exist, so the functions could read no table'
            USING HINT = 'Run the SQL of `terraform output -raw database_bootstrap_sql` '
                'once as the postgres user, then run the migrations again '
                '(README, "Deploy", first deploy).';
    END IF;
END
$$;
