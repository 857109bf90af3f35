# Validation blocks of terraform/variables.tf, exercised offline: tests/test_terraform.py
# copies variables.tf alone into an empty module (no provider, no registry) and
# runs `terraform test` there. Each run plans with one bad value and expects
# exactly that variable's validation to fail.

variables {
  project_id   = "cartcast-prod-1"
  region       = "europe-west1"
  alert_emails = ["oncall@example.com"]
}

run "defaults_are_valid" {
  command = plan
}

run "project_id_with_uppercase" {
  command = plan
  variables {
    project_id = "Cartcast-Prod"
  }
  expect_failures = [var.project_id]
}

run "region_that_is_a_zone" {
  command = plan
  variables {
    region = "europe-west1-b"
  }
  expect_failures = [var.region]
}

run "region_with_a_two_digit_number" {
  command = plan
  variables {
    region = "europe-west10"
  }
}

run "region_without_a_number" {
  command = plan
  variables {
    region = "europe-west"
  }
  expect_failures = [var.region]
}

run "prefix_too_long_for_service_account_ids" {
  command = plan
  variables {
    name_prefix = "cartcast-production"
  }
  expect_failures = [var.name_prefix]
}

run "time_zone_that_is_an_offset" {
  command = plan
  variables {
    time_zone = "+02:00"
  }
  expect_failures = [var.time_zone]
}

run "time_zone_of_a_city" {
  command = plan
  variables {
    time_zone = "America/Argentina/Buenos_Aires"
  }
}

run "schedule_with_six_fields" {
  command = plan
  variables {
    schedules = {
      publish = "0 * * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "* * * * *"
    }
  }
  expect_failures = [var.schedules]
}

run "function_missing_from_sizes" {
  command = plan
  variables {
    functions = {
      api = { memory_mb = 512, timeout_s = 60, max_instances = 1 }
    }
  }
  expect_failures = [var.functions]
}

run "event_function_longer_than_a_push_waits" {
  command = plan
  variables {
    functions = {
      api                = { memory_mb = 512, timeout_s = 60, max_instances = 20 }
      generate_caption   = { memory_mb = 512, timeout_s = 120, max_instances = 10 }
      publish_due_posts  = { memory_mb = 1024, timeout_s = 900, max_instances = 3 }
      poll_mentions      = { memory_mb = 512, timeout_s = 300, max_instances = 2 }
      score_sentiment    = { memory_mb = 512, timeout_s = 120, max_instances = 5 }
      rollup_kpis        = { memory_mb = 512, timeout_s = 300, max_instances = 1 }
      drain_caption_jobs = { memory_mb = 512, timeout_s = 180, max_instances = 4 }
    }
  }
  expect_failures = [var.functions]
}

run "settings_cannot_carry_a_secret" {
  command = plan
  variables {
    settings = { CARTCAST_OPERATOR_KEY = "not-a-real-key" }
  }
  expect_failures = [var.settings]
}

run "settings_cannot_point_at_a_stand_in" {
  command = plan
  variables {
    settings = { X_API_BASE_URL = "http://127.0.0.1:8090" }
  }
  expect_failures = [var.settings]
}

run "settings_cannot_override_log_level" {
  command = plan
  variables {
    settings = { LOG_LEVEL = "DEBUG" }
  }
  expect_failures = [var.settings]
}

run "settings_take_a_tuning_knob" {
  command = plan
  variables {
    settings = { CARTCAST_PUBLISH_BATCH = "100" }
  }
}

run "gemini_sentiment_with_gemini" {
  command = plan
  variables {
    settings = { CARTCAST_SENTIMENT_ENGINE = "gemini" }
  }
}

run "gemini_sentiment_without_the_key" {
  command = plan
  variables {
    settings       = { CARTCAST_SENTIMENT_ENGINE = "gemini" }
    gemini_enabled = false
  }
  expect_failures = [var.settings]
}

run "offline_sentiment_without_the_key" {
  command = plan
  variables {
    settings       = { CARTCAST_SENTIMENT_ENGINE = "offline" }
    gemini_enabled = false
  }
}

run "secret_version_of_an_unknown_secret" {
  command = plan
  variables {
    secret_versions = { X_API_TOKEN = "3" }
  }
  expect_failures = [var.secret_versions]
}

run "secret_version_that_is_not_a_number" {
  command = plan
  variables {
    secret_versions = { GEMINI_API_KEY = "v2" }
  }
  expect_failures = [var.secret_versions]
}

run "secret_version_pinned" {
  command = plan
  variables {
    secret_versions = { CARTCAST_OPERATOR_KEY = "2", GEMINI_API_KEY = "latest" }
  }
}

# A version named for a secret that no function mounts would be dropped without a
# word: the deployment would look rotated while nothing read the new version.
run "x_client_secret_version_without_an_x_app" {
  command = plan
  variables {
    x_client_id     = ""
    secret_versions = { CARTCAST_X_CLIENT_SECRET = "2" }
  }
  expect_failures = [var.secret_versions]
}

run "x_client_secret_version_for_a_public_x_client" {
  command = plan
  variables {
    x_client_id           = "abc"
    x_client_confidential = false
    secret_versions       = { CARTCAST_X_CLIENT_SECRET = "2" }
  }
  expect_failures = [var.secret_versions]
}

run "x_client_secret_version_for_a_confidential_x_client" {
  command = plan
  variables {
    x_client_id     = "abc"
    secret_versions = { CARTCAST_X_CLIENT_SECRET = "2" }
  }
}

run "gemini_key_version_without_gemini" {
  command = plan
  variables {
    gemini_enabled  = false
    secret_versions = { GEMINI_API_KEY = "3" }
  }
  expect_failures = [var.secret_versions]
}

run "log_level_in_lowercase" {
  command = plan
  variables {
    log_level = "info"
  }
  expect_failures = [var.log_level]
}

run "log_level_that_drops_the_lines_the_publish_alert_counts" {
  command = plan
  variables {
    log_level = "WARNING"
  }
  expect_failures = [var.log_level]
}

run "log_level_debug" {
  command = plan
  variables {
    log_level = "DEBUG"
  }
}

run "database_version_too_old" {
  command = plan
  variables {
    database_version = "POSTGRES_14"
  }
  expect_failures = [var.database_version]
}

run "tier_performance_optimized" {
  command = plan
  variables {
    database_tier = "db-perf-optimized-N-2"
  }
}

run "tier_of_another_database" {
  command = plan
  variables {
    database_tier = "db-n1-standard-1"
  }
  expect_failures = [var.database_tier]
}

run "availability_misspelt" {
  command = plan
  variables {
    database_availability = "HA"
  }
  expect_failures = [var.database_availability]
}

run "point_in_time_recovery_past_seven_days" {
  command = plan
  variables {
    point_in_time_recovery_days = 30
  }
  expect_failures = [var.point_in_time_recovery_days]
}

# Cloud SQL answers 400 "backup retention should be > transaction log retention"
# (terraform-google-modules/terraform-google-sql-db#785): 7 backups and 7 days is one.
run "as_many_backups_as_days_of_write_ahead_log" {
  command = plan
  variables {
    backup_retained_count       = 7
    point_in_time_recovery_days = 7
  }
  expect_failures = [var.backup_retained_count]
}

run "more_backups_than_days_of_write_ahead_log" {
  command = plan
  variables {
    backup_retained_count       = 8
    point_in_time_recovery_days = 7
  }
}

run "fewer_deliveries_than_pubsub_allows" {
  command = plan
  variables {
    max_delivery_attempts = 2
  }
  expect_failures = [var.max_delivery_attempts]
}

run "backoff_minimum_above_maximum" {
  command = plan
  variables {
    retry_backoff_s = { minimum = 600, maximum = 10 }
  }
  expect_failures = [var.retry_backoff_s]
}

run "migrations_image_of_another_python" {
  command = plan
  variables {
    migrations_image = "python:3.12-slim"
  }
  expect_failures = [var.migrations_image]
}

run "no_alert_email" {
  command = plan
  variables {
    alert_emails = []
  }
  expect_failures = [var.alert_emails]
}

# A metric-absence condition's duration is whole minutes, at most 23.5 hours
# (https://cloud.google.com/monitoring/alerts/metric-absence; the provider's
# condition_absent.duration: "only values that are a multiple of a minute").
run "publish_silence_of_a_whole_day" {
  command = plan
  variables {
    publish_silence_alert_s = 86400
  }
  expect_failures = [var.publish_silence_alert_s]
}

run "publish_silence_not_in_whole_minutes" {
  command = plan
  variables {
    publish_silence_alert_s = 930
  }
  expect_failures = [var.publish_silence_alert_s]
}

run "publish_silence_of_twenty_three_and_a_half_hours" {
  command = plan
  variables {
    publish_silence_alert_s = 84600
  }
}

# The missed-post sweep (CARTCAST_MISSED_AFTER_S, 900 s) and the silence alert
# (publish_silence_alert_s, 900 s) count on at least three publish runs in the
# shorter of the two, every hour of every day.
run "publish_every_quarter_hour" {
  command = plan
  variables {
    schedules = {
      publish = "*/15 * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "* * * * *"
    }
  }
  expect_failures = [var.schedules]
}

run "publish_every_five_minutes" {
  command = plan
  variables {
    schedules = {
      publish = "*/5 * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "* * * * *"
    }
  }
}

run "publish_in_office_hours_only" {
  command = plan
  variables {
    schedules = {
      publish = "* 8-18 * * 1-5"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "* * * * *"
    }
  }
  expect_failures = [var.schedules]
}

run "publish_at_listed_minutes" {
  command = plan
  variables {
    schedules = {
      publish = "0,30 * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "* * * * *"
    }
  }
  expect_failures = [var.schedules]
}

run "publish_every_quarter_hour_with_windows_of_an_hour" {
  command = plan
  variables {
    schedules = {
      publish = "*/15 * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "* * * * *"
    }
    settings                = { CARTCAST_MISSED_AFTER_S = "3600" }
    publish_silence_alert_s = 3600
  }
}

run "publish_every_minute_with_the_shortest_silence" {
  command = plan
  variables {
    publish_silence_alert_s = 300
  }
}

run "publish_every_quarter_hour_with_only_the_silence_raised" {
  command = plan
  variables {
    schedules = {
      publish = "*/15 * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "* * * * *"
    }
    publish_silence_alert_s = 3600
  }
  expect_failures = [var.schedules]
}

# drain_caption_jobs starts no chunk after CARTCAST_CAPTION_DRAIN_BUDGET_S, which
# main.tf sets to its timeout less two Gemini calls and 20 s: at least 10 s remain.
run "drain_timeout_with_no_room_for_a_budget" {
  command = plan
  variables {
    functions = {
      api                = { memory_mb = 512, timeout_s = 900, max_instances = 20 }
      generate_caption   = { memory_mb = 512, timeout_s = 120, max_instances = 10 }
      publish_due_posts  = { memory_mb = 1024, timeout_s = 300, max_instances = 3 }
      poll_mentions      = { memory_mb = 512, timeout_s = 300, max_instances = 2 }
      score_sentiment    = { memory_mb = 512, timeout_s = 120, max_instances = 5 }
      rollup_kpis        = { memory_mb = 512, timeout_s = 300, max_instances = 1 }
      drain_caption_jobs = { memory_mb = 512, timeout_s = 60, max_instances = 2 }
    }
  }
  expect_failures = [var.functions]
}

# A caption request waits for up to two Gemini calls (GEMINI_TIMEOUT_S, 20 s by
# default): a timeout that cannot hold them cuts the request off with no answer.
run "caption_timeout_too_short_for_two_gemini_calls" {
  command = plan
  variables {
    functions = {
      api                = { memory_mb = 512, timeout_s = 900, max_instances = 20 }
      generate_caption   = { memory_mb = 512, timeout_s = 50, max_instances = 10 }
      publish_due_posts  = { memory_mb = 1024, timeout_s = 300, max_instances = 3 }
      poll_mentions      = { memory_mb = 512, timeout_s = 300, max_instances = 2 }
      score_sentiment    = { memory_mb = 512, timeout_s = 120, max_instances = 5 }
      rollup_kpis        = { memory_mb = 512, timeout_s = 300, max_instances = 1 }
      drain_caption_jobs = { memory_mb = 512, timeout_s = 180, max_instances = 4 }
    }
  }
  expect_failures = [var.functions]
}

run "caption_timeout_too_short_for_slower_gemini_calls" {
  command = plan
  variables {
    settings = { GEMINI_TIMEOUT_S = "60" }
  }
  expect_failures = [var.functions]
}

run "drain_timeout_too_short_for_slower_gemini_calls" {
  command = plan
  variables {
    settings = { GEMINI_TIMEOUT_S = "80" }
  }
  expect_failures = [var.functions]
}

run "settings_cannot_set_the_caption_drain_budget" {
  command = plan
  variables {
    settings = { CARTCAST_CAPTION_DRAIN_BUDGET_S = "170" }
  }
  expect_failures = [var.settings]
}

# drain_caption_jobs drains for its whole timeout on every tick while a job has
# work, one request per instance: with 180 s runs and a tick a minute, three runs
# overlap, and a fourth tick finds no instance. Cloud Run answers it 429, Pub/Sub
# counts that as a failed delivery, and after max_delivery_attempts the tick is a
# dead letter (and an alert).
run "drain_instances_too_few_for_overlapping_runs" {
  command = plan
  variables {
    functions = {
      api                = { memory_mb = 512, timeout_s = 900, max_instances = 20 }
      generate_caption   = { memory_mb = 512, timeout_s = 120, max_instances = 10 }
      publish_due_posts  = { memory_mb = 1024, timeout_s = 300, max_instances = 3 }
      poll_mentions      = { memory_mb = 512, timeout_s = 300, max_instances = 2 }
      score_sentiment    = { memory_mb = 512, timeout_s = 120, max_instances = 5 }
      rollup_kpis        = { memory_mb = 512, timeout_s = 300, max_instances = 1 }
      drain_caption_jobs = { memory_mb = 512, timeout_s = 180, max_instances = 3 }
    }
  }
  expect_failures = [var.functions]
}

run "drain_instances_enough_on_a_slower_schedule" {
  command = plan
  variables {
    schedules = {
      publish = "* * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "*/3 * * * *"
    }
    functions = {
      api                = { memory_mb = 512, timeout_s = 900, max_instances = 20 }
      generate_caption   = { memory_mb = 512, timeout_s = 120, max_instances = 10 }
      publish_due_posts  = { memory_mb = 1024, timeout_s = 300, max_instances = 3 }
      poll_mentions      = { memory_mb = 512, timeout_s = 300, max_instances = 2 }
      score_sentiment    = { memory_mb = 512, timeout_s = 120, max_instances = 5 }
      rollup_kpis        = { memory_mb = 512, timeout_s = 300, max_instances = 1 }
      drain_caption_jobs = { memory_mb = 512, timeout_s = 180, max_instances = 2 }
    }
  }
}

run "drain_instances_counted_from_the_shortest_gap_of_any_other_schedule" {
  command = plan
  variables {
    schedules = {
      publish = "* * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "0,30 * * * *"
    }
    functions = {
      api                = { memory_mb = 512, timeout_s = 900, max_instances = 20 }
      generate_caption   = { memory_mb = 512, timeout_s = 120, max_instances = 10 }
      publish_due_posts  = { memory_mb = 1024, timeout_s = 300, max_instances = 3 }
      poll_mentions      = { memory_mb = 512, timeout_s = 300, max_instances = 2 }
      score_sentiment    = { memory_mb = 512, timeout_s = 120, max_instances = 5 }
      rollup_kpis        = { memory_mb = 512, timeout_s = 300, max_instances = 1 }
      drain_caption_jobs = { memory_mb = 512, timeout_s = 180, max_instances = 2 }
    }
  }
  expect_failures = [var.functions]
}

# A step of 0 ("*/0") passes the five-field check but means no interval at all,
# and the drain's instance count divides by it: the schedule is refused, by name,
# and no other variable's check fails in its wake.
run "drain_every_zero_minutes" {
  command = plan
  variables {
    schedules = {
      publish = "* * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "*/0 * * * *"
    }
  }
  expect_failures = [var.schedules]
}

run "sweep_every_sixty_minutes" {
  command = plan
  variables {
    schedules = {
      publish = "* * * * *"
      sweep   = "*/60 * * * *"
      poll    = "* * * * *"
      rollup  = "5 * * * *"
      drain   = "* * * * *"
    }
  }
  expect_failures = [var.schedules]
}

run "rollup_every_zero_hours" {
  command = plan
  variables {
    schedules = {
      publish = "* * * * *"
      sweep   = "*/15 * * * *"
      poll    = "* * * * *"
      rollup  = "5 */0 * * *"
      drain   = "* * * * *"
    }
  }
  expect_failures = [var.schedules]
}

run "poll_every_fifty_nine_minutes_and_rollup_every_twelve_hours" {
  command = plan
  variables {
    schedules = {
      publish = "* * * * *"
      sweep   = "*/15 * * * *"
      poll    = "*/59 * * * *"
      rollup  = "5 */12 * * *"
      drain   = "*/59 * * * *"
    }
  }
}
