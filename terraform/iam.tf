# Identities, and every role each one holds with the reason. Nothing here grants
# a project-wide role without a condition, except the operator's pause (Cloud
# Scheduler has no per-job IAM) and the builds' log writing (a build's logs are
# the project's). Cloud SQL's roles and the read of the staged source are granted
# on the project with a condition naming the one instance or bucket.

# One service account per function: a leak of one function's identity reaches
# only what that function needs.
resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = "${var.name_prefix}-fn-${each.value.short}"
  display_name = "cartcast ${each.key}"
  description  = "Runs the ${each.key} function."

  depends_on = [google_project_service.api]
}

# One push identity per event function: what its push subscriptions present to
# the function, and nothing else may invoke it.
resource "google_service_account" "push" {
  for_each = local.event_functions

  account_id   = "${var.name_prefix}-push-${each.value.short}"
  display_name = "cartcast push to ${each.key}"
  description  = "Pub/Sub push subscriptions deliver to ${each.key} as this identity."

  depends_on = [google_project_service.api]
}

# Builds the functions from the source archive, instead of the project's default
# build account (in newer projects the Compute Engine default account, often an
# Editor of the whole project).
resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "cartcast function builds"
  description  = "Cloud Build runs the seven functions' builds as this identity."

  depends_on = [google_project_service.api]
}

resource "google_service_account" "migrate" {
  account_id   = "${var.name_prefix}-migrate"
  display_name = "cartcast migrations"
  description  = "Runs the migrations job: owns the schema, the functions do not."

  depends_on = [google_project_service.api]
}

# Pub/Sub's service agent, which the grants below name, made to exist before them.
# Google creates a service agent as its service is enabled and used, and a role
# cannot be granted to one not yet created
# (cloud.google.com/iam/docs/create-service-agents): on a new project the grants
# raced the agent's creation after the API was enabled. This asks Service Usage
# for it (generateServiceIdentity), and returns the existing one when there is.
# Beta-only in the provider; decision 0097 weighs it against a gcloud step.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.api]
}

locals {
  # Not from the identity's `email`: the provider sets it only when the API
  # returns one (GoogleCloudPlatform/magic-modules#6192), and this is its
  # documented address. The grants wait for the identity through depends_on.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  sql_instance_only = {
    title       = "cartcast database instance only"
    description = "The role applies to the cartcast Cloud SQL instance alone."
    expression  = "resource.name == 'projects/${var.project_id}/instances/${google_sql_database_instance.main.name}' && resource.service == 'sqladmin.googleapis.com'"
  }
  staged_source_bucket = "gcf-v2-sources-${data.google_project.this.number}-${var.region}"
  staged_source_only = {
    title       = "Cloud Functions staged sources only"
    description = "The bucket where Cloud Functions stages the source it builds."
    expression  = "resource.name == 'projects/_/buckets/${local.staged_source_bucket}' || resource.name.startsWith('projects/_/buckets/${local.staged_source_bucket}/')"
  }
}

# cloudsql.client: the connector reads the instance's metadata and has Cloud SQL
# sign a short-lived client certificate before each new connection.
resource "google_project_iam_member" "function_sql_client" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.function[each.key].member

  condition {
    title       = local.sql_instance_only.title
    description = local.sql_instance_only.description
    expression  = local.sql_instance_only.expression
  }
}

# cloudsql.instanceUser: log in as the function's own IAM database user (no
# password). What it may do inside the database is granted by sql/024.
resource "google_project_iam_member" "function_sql_instance_user" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/cloudsql.instanceUser"
  member  = google_service_account.function[each.key].member

  condition {
    title       = local.sql_instance_only.title
    description = local.sql_instance_only.description
    expression  = local.sql_instance_only.expression
  }
}

# poll_mentions publishes new mention ids to the mentions topic, and only there.
resource "google_pubsub_topic_iam_member" "poll_publishes_mentions" {
  topic  = google_pubsub_topic.topic["mentions"].id
  role   = "roles/pubsub.publisher"
  member = google_service_account.function["poll_mentions"].member
}

# api shows the dead letters on the console's status page (dead_letters.py): it
# pulls them and hands each back at once with an acknowledgement deadline of 0.
# Pulling needs pubsub.subscriptions.consume, granted on this one subscription only;
# roles/pubsub.subscriber is the predefined role that holds it and little else.
resource "google_pubsub_subscription_iam_member" "api_reads_dead_letters" {
  subscription = google_pubsub_subscription.dead_letter.id
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.function["api"].member
}

# The operator's pause: api pauses and resumes the publish and sweep jobs
# (publish_schedule.py calls pause_job and resume_job, nothing else). Cloud
# Scheduler has no per-job IAM, so a custom role with only what those two need
# replaces roles/cloudscheduler.admin, which could also create jobs or rewrite
# their targets. Scheduler's REST reference names one permission per method:
# jobs.pause for pause, jobs.enable for resume.
resource "google_project_iam_custom_role" "publish_pause" {
  role_id     = "${replace(var.name_prefix, "-", "_")}_publish_pause"
  title       = "cartcast publish schedule pause"
  description = "Pause and resume Cloud Scheduler jobs (the operator's pause of publishing)."
  permissions = [
    "cloudscheduler.jobs.pause",
    "cloudscheduler.jobs.enable",
  ]

  depends_on = [google_project_service.api]
}

# Granted to api alone: generate_caption serves no operator route that pauses.
resource "google_project_iam_member" "api_pauses_publishing" {
  project = var.project_id
  role    = google_project_iam_custom_role.publish_pause.id
  member  = google_service_account.function["api"].member
}

# run.invoker on its own function only: the push identity is the one caller an
# event function accepts (ingress is internal-only besides).
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = local.event_functions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = google_service_account.push[each.key].member
}

# Pub/Sub's service agent mints the OIDC tokens of the push identities (needed by
# projects created before April 2021, harmless after).
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  for_each = local.event_functions

  service_account_id = google_service_account.push[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_project_service_identity.pubsub]
}

# Dead-lettering: Pub/Sub's service agent must publish to the dead-letter topic
# and acknowledge the message it moved there on the source subscription.
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent

  depends_on = [google_project_service_identity.pubsub]
}

# ...and subscriber on each push subscription, to acknowledge the moved message.
resource "google_pubsub_subscription_iam_member" "pubsub_agent_dead_letter_subscriber" {
  for_each = local.subscriptions

  subscription = google_pubsub_subscription.push[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent

  depends_on = [google_project_service_identity.pubsub]
}

# cloudsql.client for the migrations job: its connector, as the functions' do.
resource "google_project_iam_member" "migrate_sql_client" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.migrate.member

  condition {
    title       = local.sql_instance_only.title
    description = local.sql_instance_only.description
    expression  = local.sql_instance_only.expression
  }
}

# cloudsql.instanceUser: log in as the migrations user, which owns the schema
# (bootstrap in README, "Deploy").
resource "google_project_iam_member" "migrate_sql_instance_user" {
  project = var.project_id
  role    = "roles/cloudsql.instanceUser"
  member  = google_service_account.migrate.member

  condition {
    title       = local.sql_instance_only.title
    description = local.sql_instance_only.description
    expression  = local.sql_instance_only.expression
  }
}

# The build account's three needs, instead of roles/cloudbuild.builds.builder
# (which may also act as other service accounts): write the build's logs...
resource "google_project_iam_member" "build_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

# ...push the built image to the functions' own repository (functions.tf), and
# no other. Not a project-wide grant with a condition on the repository's name:
# Artifact Registry is not among the services whose resource names IAM
# conditions can test (cloud.google.com/iam/docs/conditions-resource-attributes),
# so such a condition would match nothing and no build could push...
resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = var.project_id
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# ...and read the source archive: ours...
resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# ...and the copy Cloud Functions makes of it in its own staging bucket,
# gcf-v2-sources-<project number>-<region>, which is what the build fetches
# (terraform-provider-google#20571). That bucket is Google's, created on the first
# deploy, so the grant is on the project with a condition naming the bucket.
resource "google_project_iam_member" "build_reads_staged_source" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.build.member

  condition {
    title       = local.staged_source_only.title
    description = local.staged_source_only.description
    expression  = local.staged_source_only.expression
  }
}

# The migrations job mounts the source bucket read-only to read the archives.
resource "google_storage_bucket_iam_member" "migrate_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.migrate.member
}

# api and generate_caption answer stores and people that carry no Google identity
# (a Shopify webhook cannot sign in): Cloud Run lets anyone reach them, and they
# refuse any request without a brand's API key, the operator's key or a valid
# webhook signature. No other function has a public invoker.
resource "google_cloud_run_v2_service_iam_member" "clients_invoke" {
  for_each = { for name, f in local.functions : name => f if f.clients }

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}
