# Cloud Scheduler jobs: each publishes one message to its tick topic, and the push
# subscription (pubsub.tf) delivers it to the function. The function runs as of
# the message's publish time (events.decode), so a delivery retried after an
# outage still stands for its own minute, and one older than
# CARTCAST_MAX_EVENT_AGE_S is dropped.
#
# The operator's pause (POST /v1/publishing/pause) pauses the publish and sweep
# jobs through the API; Terraform would resume them on the next apply, so it
# leaves the jobs' paused state alone.

resource "google_cloud_scheduler_job" "tick" {
  for_each = local.scheduler_jobs

  name        = local.topics[each.value.topic]
  region      = var.region
  description = "cartcast tick: publishes to ${local.topics[each.value.topic]}"
  schedule    = each.value.schedule
  time_zone   = var.time_zone

  # Pub/Sub retries the delivery to the function; the job retries only a publish
  # Pub/Sub refused, and the next tick comes soon anyway.
  retry_config {
    retry_count = 1
  }

  pubsub_target {
    topic_name = google_pubsub_topic.topic[each.value.topic].id
    data       = base64encode(jsonencode(each.value.payload))
  }

  lifecycle {
    ignore_changes = [paused]
  }

  depends_on = [google_project_service.api]
}
