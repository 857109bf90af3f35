# The seven functions (Cloud Run functions, gen2), built from one source archive
# of functions/ whose object name is its content hash: a change to the code is a
# new object and a new build of every function, an unchanged tree redeploys
# nothing.
#
# The archive is of functions/ as staged by `make deploy` (python -m
# infra.function_source): the same files with their bytecode for python311, so a
# cold start reads bytecode instead of compiling cartcast's modules (decision
# 0028). archive_file cannot run the compiler, so the staged tree's digest of its
# sources is checked here against functions/ itself: a plan without the staging,
# or after functions/ changed since, stops with what to run.

locals {
  functions_source = "${path.module}/../functions"
  functions_staged = "${path.module}/.build/functions"
  functions_source_digest = sha256(join("\n", [
    for f in fileset(local.functions_source, "**") :
    "${f} ${filesha256("${local.functions_source}/${f}")}"
    if length(regexall("(^|/)__pycache__/|\\.pyc$", f)) == 0
  ]))
}

data "archive_file" "functions" {
  type        = "zip"
  source_dir  = local.functions_staged
  output_path = "${path.module}/.build/functions.zip"
  # The checkout's file modes must not change the hash, only the content.
  output_file_mode = "0644"

  lifecycle {
    precondition {
      condition     = try(trimspace(file("${local.functions_staged}.sources.sha256")), "") == local.functions_source_digest
      error_message = "terraform/.build/functions is missing or older than functions/: run `make deploy`, or `.venv/bin/python -m infra.function_source` before terraform plan."
    }
  }
}

# The migrations, archived apart: the migrations job runs cartcast.migrate from the
# functions' archive against these files.
data "archive_file" "sql" {
  type        = "zip"
  source_dir  = "${path.module}/../sql"
  output_path = "${path.module}/.build/sql.zip"

  output_file_mode = "0644"
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only the code archives of this repository; reads are in Cloud Audit Logs, a second bucket for access logs adds nothing.
  name                        = "${var.project_id}-${var.name_prefix}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Archives are named by content; an old one is only needed to roll back.
  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }

  # Deleting a live object leaves a noncurrent version (versioning is on): it
  # goes a month later instead of being kept for ever.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_storage_bucket_object" "functions" {
  name   = "functions-${data.archive_file.functions.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.functions.output_path
}

resource "google_storage_bucket_object" "sql" {
  name   = "sql-${data.archive_file.sql.output_sha256}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.sql.output_path
}

# The repository the builds push the functions' images to, instead of the
# gcf-artifacts one Cloud Functions would create: a repository of our own takes
# a grant on itself (iam.tf), where gcf-artifacts could only be reached by a
# project-wide grant whose condition Artifact Registry does not evaluate. Same
# project and region as the functions, DOCKER format: what build_config's
# docker_repository accepts (Cloud Functions v2 API, BuildConfig).
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Holds images of this open-source repository's code, no brand data; Google-managed encryption is enough and a CMEK key ring would outlive the deployment.
  repository_id = "${var.name_prefix}-functions"
  location      = var.region
  format        = "DOCKER"
  description   = "Images of the cartcast functions, one package per function."

  # Each deploy of changed code is a new image of all seven functions. Keep the
  # five newest of each (a rollback's worth; the serving one is always among
  # them) and delete the rest once a month old. A version matching both is kept.
  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-five-newest"
    action = "KEEP"

    most_recent_versions {
      keep_count = 5
    }
  }

  cleanup_policies {
    id     = "delete-after-30-days"
    action = "DELETE"

    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_cloudfunctions2_function" "function" {
  for_each = local.functions

  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  location    = var.region
  description = "cartcast ${each.key} (functions/main.py)"

  build_config {
    runtime           = "python311"
    entry_point       = each.key
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id
    # Google's functions buildpack force-recompiles the source (`compileall -f`)
    # to find syntax errors, replacing the shipped bytecode; with SOURCE_DATE_EPOCH
    # set, Python writes it hash-based, so the image's normalised mtimes cannot
    # make it stale (decision 0028). 1980-01-01T00:00:01Z, the time the buildpack
    # lifecycle gives every file in the image.
    environment_variables = {
      SOURCE_DATE_EPOCH = "315532801"
    }

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions.name
      }
    }
  }

  service_config {
    available_memory               = "${var.functions[each.key].memory_mb}Mi"
    timeout_seconds                = var.functions[each.key].timeout_s
    max_instance_count             = var.functions[each.key].max_instances
    min_instance_count             = 0
    service_account_email          = google_service_account.function[each.key].email
    all_traffic_on_latest_revision = true

    # api and generate_caption are called by stores and people, with no Google
    # identity: they authenticate every request themselves (API keys, webhook
    # signatures). Event functions take only internal traffic, and of that only
    # their push identity may invoke them (iam.tf).
    ingress_settings = each.value.clients ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"

    environment_variables = merge(
      local.function_settings[each.key],
      local.common_env,
      { DB_USER = google_sql_user.function[each.key].name },
      local.function_env[each.key],
    )

    dynamic "secret_environment_variables" {
      for_each = toset(local.granted_secrets[each.key])
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = lookup(var.secret_versions, secret_environment_variables.value, "latest")
      }
    }
  }

  depends_on = [
    google_project_service.api,
    google_project_iam_member.build_writes_logs,
    google_artifact_registry_repository_iam_member.build_pushes_images,
    google_storage_bucket_iam_member.build_reads_source,
    google_project_iam_member.build_reads_staged_source,
    google_secret_manager_secret_iam_member.function,
    google_project_iam_member.function_sql_client,
    google_project_iam_member.function_sql_instance_user,
  ]
}
