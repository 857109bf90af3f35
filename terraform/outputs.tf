output "api_url" {
  description = "URL of the api function: the base of every route in docs/openapi.yaml, and of the store order webhooks."
  value       = google_cloudfunctions2_function.function["api"].service_config[0].uri
}

output "generate_caption_url" {
  description = "URL of the generate_caption function (POST, a brand's API key)."
  value       = google_cloudfunctions2_function.function["generate_caption"].service_config[0].uri
}

output "function_service_accounts" {
  description = "Service account email of each function, by entry point."
  value       = { for name, sa in google_service_account.function : name => sa.email }
}

output "database_users" {
  description = "PostgreSQL user of each function and of the migrations job (IAM database authentication; no passwords)."
  value = merge(
    { for name, user in google_sql_user.function : name => user.name },
    { migrate = google_sql_user.migrate.name },
  )
}

output "cloud_sql_instance" {
  description = "Connection name of the Cloud SQL instance (project:region:instance), the functions' CLOUD_SQL_INSTANCE."
  value       = google_sql_database_instance.main.connection_name
}

output "migrations_job" {
  description = "Full name of the Cloud Run job that applies sql/, projects/P/locations/REGION/jobs/NAME (make deploy runs it)."
  value       = google_cloud_run_v2_job.migrate.id
}

output "scheduler_jobs" {
  description = "Full name of each Cloud Scheduler job; publish and sweep are the ones the operator's pause stops."
  value       = { for key, job in google_cloud_scheduler_job.tick : key => job.id }
}

output "secrets" {
  description = "Secret Manager secret IDs, by the environment variable they fill; add their values with gcloud secrets versions add (names only, never values)."
  value       = { for env, secret in google_secret_manager_secret.secret : env => secret.secret_id }
}

output "dead_letter_subscription" {
  description = "Subscription holding the messages Pub/Sub gave up delivering."
  value       = google_pubsub_subscription.dead_letter.name
}

output "source_object" {
  description = "Cloud Storage object of the source archive the functions and the migrations job run, named by its SHA-256."
  value       = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.functions.name}"
}

output "database_bootstrap_sql" {
  description = "SQL to run as the postgres user before the first migration: creates the pgaudit extension, lets the migrations user create the schema and makes the functions' users members of cartcast_app (sql/024, sql/026). Safe to run again; names only, no secrets."
  value = join("\n", concat(
    [
      # CREATE ROLE has no IF NOT EXISTS; the grants below are no-ops when repeated.
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cartcast_app') THEN CREATE ROLE cartcast_app NOLOGIN; END IF; END $$;",
      # cloudsql.enable_pgaudit loads pgAudit, but it audits nothing until the
      # extension exists, which Terraform cannot create
      # (https://cloud.google.com/sql/docs/postgres/pg-audit). A server without
      # pgAudit (the tests' PostgreSQL) skips it.
      "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgaudit') THEN CREATE EXTENSION IF NOT EXISTS pgaudit; END IF; END $$;",
      "GRANT USAGE ON SCHEMA public TO cartcast_app;",
      "GRANT USAGE, CREATE ON SCHEMA public TO \"${google_sql_user.migrate.name}\";",
    ],
    [for user in google_sql_user.function : "GRANT cartcast_app TO \"${user.name}\";"],
  ))
}
