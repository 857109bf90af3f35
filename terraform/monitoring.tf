# Alerts: a function failing, messages given up on, and the publish job not
# running. Each one's documentation says what to look at first.

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  display_name = "cartcast alerts: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }

  depends_on = [google_project_service.api]
}

locals {
  notification_channels = [for channel in google_monitoring_notification_channel.email : channel.id]
  function_services     = [for f in google_cloudfunctions2_function.function : f.name]
}

# 5xx answers of any function: an event function's 5xx is a raise that Pub/Sub
# will retry (a database outage, X down); an HTTP function's is a bug.
resource "google_monitoring_alert_policy" "function_errors" {
  display_name = "cartcast: a function is failing"
  combiner     = "OR"

  conditions {
    display_name = "5xx responses per function over 5 minutes"

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"cloud_run_revision\"",
        "metric.type = \"run.googleapis.com/request_count\"",
        "metric.labels.response_code_class = \"5xx\"",
        "resource.labels.service_name = one_of(${join(", ", [for name in local.function_services : "\"${name}\""])})",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = var.error_alert_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }

  notification_channels = local.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "A cartcast function answered more than ${var.error_alert_threshold} errors in 5 minutes. Its ERROR log lines carry the traceback; a database outage shows as TransientError in every function at once."
  }
}

# Anything in the dead-letter subscription is a message a function refused
# var.max_delivery_attempts times: a post not published, mentions not scored.
resource "google_monitoring_alert_policy" "dead_letters" {
  display_name = "cartcast: messages in the dead-letter topic"
  combiner     = "OR"

  conditions {
    display_name = "undelivered messages in ${google_pubsub_subscription.dead_letter.name}"

    condition_threshold {
      filter = join(" AND ", [
        "resource.type = \"pubsub_subscription\"",
        "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\"",
        "resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\"",
      ])
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  notification_channels = local.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "Pub/Sub gave up delivering a message to a cartcast function. Read it with `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter.name}`; its attributes name the source subscription. Scheduler ticks can be dropped (the next tick does the work); mention ids should be re-sent once the function is healthy."
  }
}

# One count per finished publish tick, from the function's JSON log line. A
# sweep logs the same message with a `missed` count; it is left out, or a dead
# publish job would look alive every 15 minutes.
resource "google_logging_metric" "publish_runs" {
  name   = "${var.name_prefix}_publish_runs"
  filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloudfunctions2_function.function["publish_due_posts"].name}\" AND jsonPayload.message=\"publish_due_posts done\" AND NOT jsonPayload.missed:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}

# The sweep's own finding (sweeping.py): due posts no run picked up. Its `alert`
# field is kept stable for this filter.
resource "google_logging_metric" "missed_posts" {
  name   = "${var.name_prefix}_publish_job_not_running"
  filter = "resource.type=\"cloud_run_revision\" AND jsonPayload.alert=\"publish_job_not_running\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}

# Cloud Monitoring answers 404 to a policy on a log-based metric created moments
# before, until the metric has propagated (terraform-provider-google#11102): the
# policy waits a minute after the metrics, on the first apply and when they change.
resource "time_sleep" "log_metrics_propagate" {
  create_duration = "60s"

  triggers = {
    publish_runs = google_logging_metric.publish_runs.id
    missed_posts = google_logging_metric.missed_posts.id
  }
}

# The publish job is not running: no finished tick for a while (the job paused,
# by the operator's pause too, so that it is not forgotten; deleted; or every run
# failing), or a sweep found posts that no run picked up.
resource "google_monitoring_alert_policy" "publish_not_running" {
  display_name = "cartcast: the publish job is not running"
  combiner     = "OR"

  conditions {
    display_name = "no finished publish_due_posts tick"

    condition_absent {
      filter   = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.publish_runs.name}\""
      duration = "${var.publish_silence_alert_s}s"

      # One series for the service, not one per revision: each deploy starts a
      # new revision and ends the old one's series, and an absence condition on
      # the old series would fire after every deploy.
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }

  conditions {
    display_name = "the sweep found due posts no run picked up"

    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.missed_posts.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_SUM"
      }
    }
  }

  notification_channels = local.notification_channels

  documentation {
    mime_type = "text/markdown"
    content   = "publish_due_posts has logged no finished tick for ${var.publish_silence_alert_s} s, or a sweep found due posts that no run picked up (and sent them). Check the Cloud Scheduler job ${google_cloud_scheduler_job.tick["publish"].name} (paused by the operator's pause?), then the function's errors. Posts due meanwhile go at the next run; those too late are held (README, \"A post's lifecycle\")."
  }

  depends_on = [time_sleep.log_metrics_propagate]
}
