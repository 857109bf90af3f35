terraform {
  # 1.9 for validations that read another variable (settings and gemini_enabled);
  # below 2.0, whose language may change.
  required_version = ">= 1.9, < 2.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x: Cloud Run v2 jobs with Cloud Storage volumes, functions gen2 with
      # direct secret references; 7.0 may rename what this tree uses.
      version = ">= 6.10, < 7.0"
    }
    # One resource only: google_project_service_identity (iam.tf), which the google
    # provider does not have; pinned with it so the two move together.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.10, < 7.0"
    }
    time = {
      source = "hashicorp/time"
      # time_sleep with triggers: the wait for log-based metrics (monitoring.tf).
      version = ">= 0.9, < 1.0"
    }
    archive = {
      source = "hashicorp/archive"
      # 2.7: glob excludes and a fixed file mode, so the hash is the content's.
      version = ">= 2.7, < 3.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app = "cartcast"
  }
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app = "cartcast"
  }
}
