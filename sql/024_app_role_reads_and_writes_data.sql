-- 024: the functions read and write data, the migrations user alone changes the
-- schema (decision 0025). In the cloud the functions' database users are members
-- of cartcast_app, created once by the deployment's bootstrap (README, "Deploy");
-- this grants that role the data of every table, now and in every later
-- migration. Where no cartcast_app role exists (a local server, the tests), one
-- superuser does everything and nothing changes.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cartcast_app') THEN
        GRANT USAGE ON SCHEMA public TO cartcast_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public
            TO cartcast_app;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO cartcast_app;
        -- Tables and sequences the migrations user creates later, in files after
        -- this one, come with the same rights.
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO cartcast_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT USAGE, SELECT ON SEQUENCES TO cartcast_app;
    END IF;
END
$$;
