# The migrations job: `python -m cartcast.migrate` from the same source archive
# the functions run, against the sql/ archive, as its own service account. It is
# a Cloud Run job, run on demand (`make deploy` runs it before the functions
# change), never on a function's cold start.
#
# The image is a plain Python 3.11 image; the job installs the pinned
# functions/requirements.txt at start (a minute), so no image has to be built and
# kept in step with the code. It needs egress to PyPI for that.

locals {
  migrate_script = join(" && ", [
    "python -m zipfile -e /source/${google_storage_bucket_object.functions.name} /tmp/app",
    "python -m zipfile -e /source/${google_storage_bucket_object.sql.name} /tmp/sql",
    "pip install --quiet --no-cache-dir --target /tmp/deps -r /tmp/app/requirements.txt",
    "PYTHONPATH=/tmp/app:/tmp/deps python -m cartcast.migrate --sql-dir /tmp/sql",
  ])

  # The tuning settings only the job reads (CARTCAST_MIGRATE_LOCK_*, decision
  # 0108): var.settings is where a deployment sets them, as every other one.
  migrate_settings = {
    for key, value in var.settings : key => value if startswith(key, "CARTCAST_MIGRATE_")
  }
}

resource "google_cloud_run_v2_job" "migrate" {
  name     = "${var.name_prefix}-migrate"
  location = var.region

  # The job holds no data; deleting it loses nothing.
  deletion_protection = false

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account       = google_service_account.migrate.email
      timeout               = "900s"
      max_retries           = 0
      execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

      containers {
        image   = var.migrations_image
        command = ["/bin/sh", "-c"]
        args    = [local.migrate_script]

        env {
          name  = "CARTCAST_ENV"
          value = "cloud"
        }
        env {
          name  = "CARTCAST_PUBSUB"
          value = "google"
        }
        env {
          name  = "GOOGLE_CLOUD_PROJECT"
          value = var.project_id
        }
        env {
          name  = "CLOUD_SQL_INSTANCE"
          value = google_sql_database_instance.main.connection_name
        }
        env {
          name  = "DB_USER"
          value = google_sql_user.migrate.name
        }
        env {
          name  = "DB_NAME"
          value = google_sql_database.cartcast.name
        }
        env {
          name  = "DB_IAM_AUTH"
          value = "true"
        }
        dynamic "env" {
          for_each = local.migrate_settings
          content {
            name  = env.key
            value = env.value
          }
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "1Gi"
          }
        }

        volume_mounts {
          name       = "source"
          mount_path = "/source"
        }
      }

      # No launch_stage: Cloud Storage volumes on jobs are GA in Cloud Run and a
      # GA field of the 6.x google provider (its cloud_run_v2_job page, and
      # magic-modules' cloudrunv2/Job.yaml, mark `gcs` as no beta field); the
      # "BETA" they once needed (magic-modules#9746, 2024) would now only opt the
      # job into preview features.
      volumes {
        name = "source"
        gcs {
          bucket    = google_storage_bucket.source.name
          read_only = true
        }
      }
    }
  }

  depends_on = [
    google_project_service.api,
    google_project_iam_member.migrate_sql_client,
    google_project_iam_member.migrate_sql_instance_user,
    google_storage_bucket_iam_member.migrate_reads_source,
  ]
}
