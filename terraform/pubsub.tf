# Topics and the push subscriptions cartcast owns (decision 0025).
#
# Each event function is an HTTP service that only Pub/Sub may call: a push
# subscription posts every message to the function's URL with an OIDC token of
# that function's own push identity, retries with backoff, and after
# var.max_delivery_attempts sends it to the dead-letter topic, where it waits
# (and alerts) instead of vanishing. An Eventarc trigger would create a push
# subscription of its own, which cannot carry a dead-letter topic.
#
# functions-framework turns the push body into the same messagePublished
# CloudEvent an Eventarc trigger sends; the topic's path on the URL becomes the
# event's source.

resource "google_pubsub_topic" "topic" {
  #checkov:skip=CKV_GCP_83:Messages are ids and ticks, no brand data; Google-managed encryption is enough and a CMEK key ring would outlive the deployment.
  for_each = local.topics

  name                       = each.value
  message_retention_duration = "86400s"

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Same as the other topics: ids and ticks only.
  name                       = "${var.name_prefix}-dead-letter"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.api]
}

# Keeps dead letters for a week so that someone can read them (and the backlog
# alert has something to count); a topic without a subscription drops them.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.name_prefix}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "push" {
  for_each = local.subscriptions

  name  = "${local.topics[each.value.topic]}-push"
  topic = google_pubsub_topic.topic[each.value.topic].id

  # The function answers within its timeout; Pub/Sub waits at most 600 s.
  ack_deadline_seconds       = min(600, var.functions[each.value.function].timeout_s + 30)
  message_retention_duration = "86400s"

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${var.retry_backoff_s.minimum}s"
    maximum_backoff = "${var.retry_backoff_s.maximum}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function[each.value.function].service_config[0].uri}/projects/${var.project_id}/topics/${local.topics[each.value.topic]}"

    oidc_token {
      service_account_email = google_service_account.push[each.value.function].email
      audience              = google_cloudfunctions2_function.function[each.value.function].service_config[0].uri
    }
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_service_account_iam_member.pubsub_agent_token_creator,
  ]
}
