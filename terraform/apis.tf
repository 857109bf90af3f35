# The Google APIs the deployment uses. Left enabled on destroy: other workloads in
# the project may rely on them, and disabling an API can delete their resources.

locals {
  apis = [
    "artifactregistry.googleapis.com", # images the function builds produce
    "cloudbuild.googleapis.com",       # builds each function from the source archive
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com", # the project's number and its IAM policy
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com", # the log-based metric of finished publish runs
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com", # gen2 functions are Cloud Run services; the migrations job
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com", # the Cloud SQL connector asks it for certificates
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "api" {
  for_each = toset(local.apis)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
