# Cloud SQL for PostgreSQL. The functions and the migrations job reach it through
# the Cloud SQL Python Connector with IAM database authentication: no password
# exists, and the connector's mutual TLS and IAM check stand where authorized
# networks would (decision 0025).

locals {
  # Cloud SQL offers the performance-optimized tiers only in Enterprise Plus, and
  # the custom and shared-core tiers only in Enterprise.
  database_edition = startswith(var.database_tier, "db-perf-optimized-") ? "ENTERPRISE_PLUS" : "ENTERPRISE"
}

resource "google_sql_database_instance" "main" {
  #checkov:skip=CKV_GCP_60:Public IP with no authorized networks: only the Cloud SQL connector (mutual TLS, IAM-checked) can reach it; private IP would need a VPC and a connector for every function (decision 0025).
  #checkov:skip=CKV_GCP_79:The major version is a variable (15 to 17, default 16); 18 is accepted once the test suite has run on it (it runs on 15 here).
  #checkov:skip=CKV2_GCP_13:log_duration writes a line for every statement (thousands a minute from the publish workers); slow statements show in Query Insights instead.
  name                = "${var.name_prefix}-db"
  region              = var.region
  database_version    = var.database_version
  deletion_protection = var.deletion_protection

  settings {
    tier                        = var.database_tier
    edition                     = local.database_edition
    availability_type           = var.database_availability
    disk_autoresize             = true
    deletion_protection_enabled = var.deletion_protection

    backup_configuration {
      enabled                        = true
      start_time                     = "03:00"
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.point_in_time_recovery_days

      backup_retention_settings {
        retained_backups = var.backup_retained_count
        retention_unit   = "COUNT"
      }
    }

    ip_configuration {
      ipv4_enabled = true
      # The connector always speaks TLS with a client certificate it fetched with
      # the caller's IAM identity; anything else is refused.
      ssl_mode = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    }

    maintenance_window {
      day          = 7
      hour         = 4
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      record_application_tags = false
      record_client_address   = false
    }

    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      # Statements are not logged by duration: they carry brands' data.
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_sql_database" "cartcast" {
  name     = "cartcast"
  instance = google_sql_database_instance.main.name
}

# One PostgreSQL user per function, and one for the migrations job. Privileges
# inside the database are SQL, not Terraform: sql/024 grants the functions' users
# reading and writing data through the cartcast_app role, and the schema belongs
# to the migrations user (README, "Deploy", first deploy).
resource "google_sql_user" "function" {
  for_each = local.functions

  name     = local.function_db_users[each.key]
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

resource "google_sql_user" "migrate" {
  name     = trimsuffix(google_service_account.migrate.email, ".gserviceaccount.com")
  instance = google_sql_database_instance.main.name
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}
