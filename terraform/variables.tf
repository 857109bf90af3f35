# Inputs of the deployment. Secret values are never inputs: Terraform creates the
# Secret Manager secrets empty, and their values are added with gcloud (README,
# "Deploy"), so they reach neither a .tfvars file nor the state.

variable "project_id" {
  type        = string
  description = "Google Cloud project that holds every cartcast resource."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID: 6 to 30 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  type        = string
  description = "Region of the functions, Cloud SQL, the Cloud Scheduler jobs, the functions' image repository and the migrations job, e.g. europe-west1. One region serves them all, and Cloud Scheduler runs in fewer regions than Cloud Run functions: pick one listed at https://cloud.google.com/scheduler/docs/locations, or the jobs cannot be created."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Google Cloud region such as us-central1, europe-west1 or europe-west10."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name; at most 12 characters so that service account IDs stay under 30."
  default     = "cartcast"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,10}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 12 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "time_zone" {
  type        = string
  description = "IANA time zone the Cloud Scheduler schedules are read in, e.g. Etc/UTC or America/New_York."
  default     = "Etc/UTC"

  validation {
    condition     = can(regex("^(UTC|[A-Z][A-Za-z_]+(/[A-Z][A-Za-z0-9_+-]+){1,2})$", var.time_zone))
    error_message = "time_zone must be an IANA time zone name such as Etc/UTC or America/New_York."
  }
}

variable "schedules" {
  type = object({
    publish = string
    sweep   = string
    poll    = string
    rollup  = string
    drain   = string
  })
  description = "Cron schedules (five fields, in time_zone) of the publish tick, the missed-post sweep, the mention poll, the KPI rollup and the caption-job drain."
  default = {
    publish = "* * * * *"
    sweep   = "*/15 * * * *"
    poll    = "* * * * *"
    rollup  = "5 * * * *"
    drain   = "* * * * *"
  }

  validation {
    condition = alltrue([
      for schedule in values(var.schedules) :
      can(regex("^([0-9*/,-]+) ([0-9*/,-]+) ([0-9*/,-]+|\\?) ([0-9A-Za-z*/,-]+) ([0-9A-Za-z*/,-]+|\\?)$", schedule))
    ])
    error_message = "Each schedule must be a five-field cron expression such as \"*/15 * * * *\"."
  }

  validation {
    # A step ("*/N", "0-30/N") passes the check above whatever N is, but Cloud
    # Scheduler reads a step of 0 as no interval, and one past its field's largest
    # value fires once at most: N must be 1 to 59 for minutes, 23 for hours, 31
    # for days of the month, 12 for months and 7 for days of the week. The drain's
    # instance count (var.functions) divides by N, so 0 must stop here. The
    # message repeats the condition's expression to name the schedules refused: a
    # local built from var.schedules and read here is a cycle (Terraform 1.11:
    # "var.schedules (validation), local... (expand)"), as every reader of a
    # variable waits for its validation; keep the two alike.
    condition = length([
      for name, schedule in var.schedules : name
      if anytrue([
        for index, field in slice(concat(split(" ", schedule), ["", "", "", "", ""]), 0, 5) :
        anytrue([
          for step in regexall("/([0-9]*)", field) :
          !contains(range(1, [60, 24, 32, 13, 8][index]), try(tonumber(step[0]), 0))
        ])
      ])
    ]) == 0
    error_message = "A cron step \"*/N\" must have N from 1 to 59 in the minute field (23 hours, 31 days of the month, 12 months, 7 days of the week); refused: ${join(", ", [
      for name, schedule in var.schedules : "schedules.${name} = \"${schedule}\""
      if anytrue([
        for index, field in slice(concat(split(" ", schedule), ["", "", "", "", ""]), 0, 5) :
        anytrue([
          for step in regexall("/([0-9]*)", field) :
          !contains(range(1, [60, 24, 32, 13, 8][index]), try(tonumber(step[0]), 0))
        ])
      ])
    ])}."
  }

  validation {
    # The missed-post sweep calls a post missed CARTCAST_MISSED_AFTER_S after it was
    # due, and the silence alert fires after publish_silence_alert_s without a
    # finished run: both count on at least three publish runs in the shorter of
    # the two, every hour of every day, so one slow or failed run trips neither.
    # Only "* * * * *" and "*/N * * * *" are accepted: their longest gap between
    # runs is N minutes. Bounding the gap of a list, a range or restricted hours
    # needs a cron parser, which HCL has not, so those are refused, not guessed.
    condition = (
      can(regex("^(\\*|\\*/[1-9][0-9]?) \\* \\* \\* \\*$", var.schedules.publish)) &&
      3 * 60 * try(tonumber(regex("^\\*/([0-9]+) ", var.schedules.publish)[0]), 1) <= min(
        var.publish_silence_alert_s,
        try(tonumber(var.settings["CARTCAST_MISSED_AFTER_S"]), 900),
      )
    )
    error_message = "schedules.publish must be \"* * * * *\" or \"*/N * * * *\" (every N minutes, all day, every day) with 3 × N minutes at most publish_silence_alert_s and settings CARTCAST_MISSED_AFTER_S (900 s each by default, so N up to 5): rarer runs make the sweep call every post missed and the silence alert fire between runs."
  }
}

variable "functions" {
  type = map(object({
    memory_mb     = number
    timeout_s     = number
    max_instances = number
  }))
  description = "Memory (MiB), timeout (seconds) and maximum instances of each function, keyed by entry point."
  # Memory: every function's peak in `make bench` is under 100 MiB, so each fits the
  # 256 MiB tier, and 256 is a valid setting. On gen2, memory also sets the CPU
  # share (256 MiB gets a sixth of a vCPU, 512 MiB a third, 1 GiB 0.583): the
  # defaults buy CPU for cold starts and the export's compression, and publish's
  # 1 GiB for its worker threads (decision 0016).
  # The api's 900 s are for GET /v1/brand/export, which streams a big brand's
  # archive for minutes (67 s for 400,000 snapshots in bench/export_memory.py); a
  # request cut at the timeout leaves an archive without its manifest.
  default = {
    api                = { memory_mb = 512, timeout_s = 900, max_instances = 20 }
    generate_caption   = { memory_mb = 512, timeout_s = 120, max_instances = 10 }
    publish_due_posts  = { memory_mb = 1024, timeout_s = 300, max_instances = 3 }
    poll_mentions      = { memory_mb = 512, timeout_s = 300, max_instances = 2 }
    score_sentiment    = { memory_mb = 512, timeout_s = 120, max_instances = 5 }
    rollup_kpis        = { memory_mb = 512, timeout_s = 300, max_instances = 1 }
    drain_caption_jobs = { memory_mb = 512, timeout_s = 180, max_instances = 4 }
  }

  validation {
    condition = (
      length(var.functions) == 7 && alltrue([
        for name in ["api", "generate_caption", "publish_due_posts", "poll_mentions", "score_sentiment", "rollup_kpis", "drain_caption_jobs"] :
        contains(keys(var.functions), name)
      ])
    )
    error_message = "functions must list exactly the seven entry points of functions/main.py."
  }

  validation {
    condition = alltrue([
      for size in values(var.functions) :
      contains([256, 512, 1024, 2048, 4096], size.memory_mb) && size.max_instances >= 1 && size.max_instances <= 100
    ])
    error_message = "memory_mb must be 256, 512, 1024, 2048 or 4096, and max_instances 1 to 100."
  }

  validation {
    # A push subscription waits at most 600 s for an answer, and the settings cap
    # every wait inside an event function at 540 s (settings.RUN_WAIT_MAX_S).
    condition = alltrue([
      for name, size in var.functions :
      size.timeout_s >= 10 && size.timeout_s <= (contains(["api", "generate_caption"], name) ? 3600 : 540)
    ])
    error_message = "timeout_s must be 10 to 540 for event functions, 10 to 3600 for api and generate_caption."
  }

  validation {
    # A caption request (generate_caption, or POST /v1/captions on api) waits for
    # up to two Gemini calls of GEMINI_TIMEOUT_S (20 s unless set) and a pause
    # between them; cut off by its timeout, it answers nothing, its slot spent.
    condition     = min(try(var.functions["generate_caption"].timeout_s, 120), try(var.functions["api"].timeout_s, 900)) - 2 * try(tonumber(var.settings["GEMINI_TIMEOUT_S"]), 20) >= 20
    error_message = "generate_caption's and api's timeout_s must each be at least 2 × GEMINI_TIMEOUT_S + 20 (60 s by default): a caption request may wait for two Gemini calls."
  }

  validation {
    # main.tf sets drain_caption_jobs' CARTCAST_CAPTION_DRAIN_BUDGET_S to its
    # timeout less two Gemini calls (GEMINI_TIMEOUT_S, 20 s unless set) and 20 s.
    condition     = try(var.functions["drain_caption_jobs"].timeout_s, 180) - 2 * try(tonumber(var.settings["GEMINI_TIMEOUT_S"]), 20) - 20 >= 10
    error_message = "drain_caption_jobs' timeout_s must be at least 2 × GEMINI_TIMEOUT_S + 30 (70 s by default): its caption budget is the timeout less two Gemini calls and 20 s, and must be 10 s or more."
  }

  validation {
    # While a caption job has work, every drain tick runs for up to its whole
    # timeout, so runs overlap; a function instance takes one request at a time
    # (Cloud Run functions, "Configure maximum instances"). A tick that finds
    # every instance busy is answered 429, which Pub/Sub counts as a failed
    # delivery: past max_delivery_attempts it is a dead letter and an alert.
    # Enough instances for every run a timeout can hold, and one for the new
    # tick. The gap between ticks is N minutes for "*/N * * * *", else taken as
    # one minute, the shortest any cron schedule has. "*/0" is refused by name in
    # var.schedules; here it counts as 1 rather than a division by zero, which
    # would fail this check too with a message about max_instances.
    condition = try(var.functions["drain_caption_jobs"].max_instances, 4) >= 1 + ceil(
      try(var.functions["drain_caption_jobs"].timeout_s, 180) /
      (60 * max(1, try(tonumber(regex("^\\*/([0-9]+) \\* \\* \\* \\*$", var.schedules.drain)[0]), 1)))
    )
    error_message = "drain_caption_jobs' max_instances must be at least 1 + timeout_s / (60 × N) rounded up, N being the minutes between drain ticks (schedules.drain \"*/N * * * *\"; 1 for any other schedule): 4 with the defaults. Runs overlap while a caption job has work, and a tick that finds no free instance is refused (429), retried, and dead-lettered after max_delivery_attempts."
  }
}

variable "settings" {
  type        = map(string)
  description = "Tuning settings passed to every function as environment variables (README, \"Configuration\"), e.g. { CARTCAST_PUBLISH_BATCH = \"100\" }. Values Terraform wires itself, secrets, local-only variables and LOG_LEVEL (the log_level variable) are refused."
  default     = {}

  validation {
    condition = alltrue([
      for name in keys(var.settings) :
      can(regex("^(CARTCAST_[A-Z0-9_]+|GEMINI_[A-Z0-9_]+|X_TIMEOUT_S)$", name))
    ])
    error_message = "settings keys must be cartcast settings: CARTCAST_*, GEMINI_* or X_TIMEOUT_S (LOG_LEVEL is the log_level variable)."
  }

  validation {
    condition = length(setintersection(keys(var.settings), [
      # Wired by Terraform from the resources it creates.
      "CARTCAST_ENV", "CARTCAST_PUBSUB", "GOOGLE_CLOUD_PROJECT", "CLOUD_SQL_INSTANCE",
      "DB_USER", "DB_NAME", "DB_IAM_AUTH", "CARTCAST_MENTIONS_TOPIC", "CARTCAST_MENTION_POLL_LEASE_S", "CARTCAST_WEBHOOK_BUDGET_S", "CARTCAST_FUNCTION_TIMEOUT_S", "CARTCAST_CAPTION_DRAIN_BUDGET_S",
      "CARTCAST_SCHEDULER_JOB", "CARTCAST_SWEEP_SCHEDULER_JOB", "CARTCAST_DEAD_LETTER_SUBSCRIPTION",
      "CARTCAST_X_CLIENT_ID", "CARTCAST_X_REDIRECT_URI", "CARTCAST_TOKEN_KEY_SECRET",
      # Secrets: Secret Manager only.
      "CARTCAST_OPERATOR_KEY", "GEMINI_API_KEY", "CARTCAST_CONSOLE_SECRET", "CARTCAST_X_CLIENT_SECRET",
      # Local stand-ins, refused or meaningless in the cloud.
      "DATABASE_URL", "CARTCAST_CLOCK", "CARTCAST_PUBSUB_PUSH", "X_API_BASE_URL",
      "GEMINI_BASE_URL", "CARTCAST_SCHEDULER_ENDPOINT", "CARTCAST_TOKEN_KEY_FILE",
      "CARTCAST_SECRET_MANAGER_ENDPOINT", "CARTCAST_X_AUTHORIZE_URL",
    ])) == 0
    error_message = "settings must not set what Terraform wires (database, Pub/Sub and its dead-letter subscription, Scheduler jobs, the mention poll's lease, which is poll_mentions' timeout_s, the function timeout the tick claims read, the webhook budget, a quarter of each function's, and the caption drain's budget, from drain_caption_jobs' timeout_s), secrets, or local-only variables (DATABASE_URL, CARTCAST_CLOCK, CARTCAST_PUBSUB_PUSH, *_BASE_URL, CARTCAST_SCHEDULER_ENDPOINT, CARTCAST_TOKEN_KEY_FILE, CARTCAST_SECRET_MANAGER_ENDPOINT, CARTCAST_X_AUTHORIZE_URL)."
  }

  validation {
    # Cross-variable: Terraform 1.9 (versions.tf).
    condition     = lower(lookup(var.settings, "CARTCAST_SENTIMENT_ENGINE", "offline")) != "gemini" || var.gemini_enabled
    error_message = "settings CARTCAST_SENTIMENT_ENGINE = \"gemini\" needs gemini_enabled = true: without GEMINI_API_KEY the functions that score mentions refuse to start."
  }
}

variable "gemini_enabled" {
  type        = bool
  description = "Give the functions that write captions or label mentions the Gemini key from Secret Manager; false leaves the template engine and the offline scorer."
  default     = true
}

variable "x_client_id" {
  type        = string
  description = "The X app's OAuth 2.0 client id (X developer console, \"Keys and tokens\"); its client secret goes to Secret Manager. Empty: brands cannot connect their X accounts, connecting answers 409 naming it, and no function is given the X client secret (so it needs no version)."
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{0,200}$", var.x_client_id))
    error_message = "x_client_id is the client id X shows: letters, digits, - and _."
  }
}

variable "x_client_confidential" {
  type        = bool
  description = "Whether the X app is a confidential client (app type Web App, Automated App or Bot, as X creates apps unless told otherwise: it has a client secret, sent with HTTP Basic) or a public one (Native App or Single page App: no secret, only its id is sent). True gives the functions that call X the secret from Secret Manager, which then needs a version; false gives it to none."
  default     = true
}

variable "x_redirect_uri" {
  type        = string
  description = "Where X sends a person back after approving: the api function's URL followed by /v1/x/callback, exactly as registered as a callback URL with the X app."
  default     = ""

  validation {
    condition     = var.x_redirect_uri == "" || can(regex("^https://[^ ]+/v1/x/callback$", var.x_redirect_uri))
    error_message = "x_redirect_uri must be an https URL ending in /v1/x/callback (the api function's route)."
  }
}

variable "secret_versions" {
  type        = map(string)
  description = "Secret Manager version each function reads, by environment variable (CARTCAST_OPERATOR_KEY, GEMINI_API_KEY, CARTCAST_CONSOLE_SECRET, CARTCAST_X_CLIENT_SECRET); \"latest\" when unset. Naming the new version is how a rotation redeploys the functions that hold the secret. Refused for a secret no function is given (the X client secret without a confidential X app, the Gemini key with gemini_enabled = false)."
  default     = {}

  validation {
    condition = alltrue([
      for env, version in var.secret_versions :
      contains(["CARTCAST_OPERATOR_KEY", "GEMINI_API_KEY", "CARTCAST_CONSOLE_SECRET", "CARTCAST_X_CLIENT_SECRET"], env) && can(regex("^(latest|[1-9][0-9]*)$", version))
    ])
    error_message = "secret_versions maps CARTCAST_OPERATOR_KEY, GEMINI_API_KEY, CARTCAST_CONSOLE_SECRET or CARTCAST_X_CLIENT_SECRET to a version number or \"latest\"."
  }

  validation {
    # A version of a secret that no function mounts (main.tf, granted_secrets)
    # would be dropped silently: the deploy would look like a rotation while
    # nothing read the new version. Cross-variable: Terraform 1.9 (versions.tf).
    condition = (
      (!contains(keys(var.secret_versions), "CARTCAST_X_CLIENT_SECRET") || (var.x_client_id != "" && var.x_client_confidential)) &&
      (!contains(keys(var.secret_versions), "GEMINI_API_KEY") || var.gemini_enabled)
    )
    error_message = "secret_versions names a secret no function is given: CARTCAST_X_CLIENT_SECRET is mounted only with an X app (x_client_id set) that is a confidential client (x_client_confidential = true), and GEMINI_API_KEY only with gemini_enabled = true. Remove the entry, or set the variable that gives the functions that secret."
  }
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of every function: INFO, or DEBUG to read more. Not higher: the alert that the publish job is not running counts publish_due_posts' INFO line for each finished run (monitoring.tf)."
  default     = "INFO"

  validation {
    # Above INFO the "publish_due_posts done" lines are not written, the
    # publish_runs metric stays empty, and the silence alert fires for good.
    condition     = contains(["DEBUG", "INFO"], var.log_level)
    error_message = "log_level must be INFO or DEBUG: with WARNING or above the functions write no INFO line, and the alert that the publish job is not running (it counts publish_due_posts' INFO line per finished run) would fire for good."
  }
}

variable "database_version" {
  type        = string
  description = "Cloud SQL PostgreSQL major version."
  default     = "POSTGRES_16"

  validation {
    condition     = contains(["POSTGRES_15", "POSTGRES_16", "POSTGRES_17"], var.database_version)
    error_message = "database_version must be POSTGRES_15, POSTGRES_16 or POSTGRES_17."
  }
}

variable "database_tier" {
  type        = string
  description = "Cloud SQL machine tier, e.g. db-custom-1-3840 (1 vCPU, 3.75 GB). A db-perf-optimized-N-* tier makes the instance Enterprise Plus (sql.tf); the others are Enterprise."
  default     = "db-custom-1-3840"

  validation {
    condition     = can(regex("^db-(custom-[0-9]+-[0-9]+|g1-small|f1-micro|perf-optimized-N-[0-9]+)$", var.database_tier))
    error_message = "database_tier must be a Cloud SQL tier such as db-custom-1-3840 or db-g1-small."
  }
}

variable "database_availability" {
  type        = string
  description = "ZONAL (one zone) or REGIONAL (a standby in a second zone, automatic failover)."
  default     = "REGIONAL"

  validation {
    condition     = contains(["ZONAL", "REGIONAL"], var.database_availability)
    error_message = "database_availability must be ZONAL or REGIONAL."
  }
}

variable "backup_retained_count" {
  type        = number
  description = "Daily Cloud SQL backups kept."
  default     = 14

  validation {
    condition     = var.backup_retained_count >= 7 && var.backup_retained_count <= 365
    error_message = "backup_retained_count must be 7 to 365."
  }

  validation {
    # Cloud SQL refuses as many backups as days of log with "backup retention
    # should be > transaction log retention" (terraform-google-sql-db#785).
    condition     = var.backup_retained_count > var.point_in_time_recovery_days
    error_message = "backup_retained_count must be more than point_in_time_recovery_days: Cloud SQL keeps more backups than days of write-ahead log."
  }
}

variable "point_in_time_recovery_days" {
  type        = number
  description = "Days of write-ahead log kept for point-in-time recovery."
  default     = 7

  validation {
    condition     = var.point_in_time_recovery_days >= 1 && var.point_in_time_recovery_days <= 7
    error_message = "point_in_time_recovery_days must be 1 to 7 (Cloud SQL's range for PostgreSQL)."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the Cloud SQL instance (in Terraform and in the API). Turn off only to tear a test deployment down."
  default     = true
}

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries of a Pub/Sub message to an event function before it goes to the dead-letter topic."
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be 5 to 100 (Pub/Sub's range)."
  }
}

variable "retry_backoff_s" {
  type = object({
    minimum = number
    maximum = number
  })
  description = "Pub/Sub's exponential backoff between deliveries of a failed message, seconds."
  default     = { minimum = 10, maximum = 300 }

  validation {
    condition = (
      var.retry_backoff_s.minimum >= 0 && var.retry_backoff_s.maximum <= 600 &&
      var.retry_backoff_s.minimum <= var.retry_backoff_s.maximum
    )
    error_message = "retry_backoff_s must satisfy 0 <= minimum <= maximum <= 600."
  }
}

variable "migrations_image" {
  type        = string
  description = "Container image the migrations job runs: a plain Python 3.11 image; the job installs functions/requirements.txt into it and runs cartcast.migrate from the source archive."
  default     = "python:3.11-slim"

  validation {
    condition     = can(regex("^([a-z0-9.-]+/)*python:3\\.11[a-z0-9.@:-]*$", var.migrations_image))
    error_message = "migrations_image must be a Python 3.11 image, the version the functions run (python311)."
  }
}

variable "alert_emails" {
  type        = list(string)
  description = "Email addresses that receive the alerts (function errors, dead letters, the publish job not running)."

  validation {
    condition     = length(var.alert_emails) > 0 && alltrue([for email in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$", email))])
    error_message = "alert_emails must list at least one email address."
  }
}

variable "error_alert_threshold" {
  type        = number
  description = "Alert when one function answers more than this many 5xx responses in 5 minutes."
  default     = 5

  validation {
    condition     = var.error_alert_threshold >= 1
    error_message = "error_alert_threshold must be at least 1."
  }
}

variable "publish_silence_alert_s" {
  type        = number
  description = "Alert when publish_due_posts has logged no finished run for this many seconds (its job paused or broken)."
  default     = 900

  validation {
    # A metric-absence condition lasts whole minutes, 23.5 hours at most
    # (https://cloud.google.com/monitoring/alerts/metric-absence).
    condition     = var.publish_silence_alert_s >= 300 && var.publish_silence_alert_s <= 84600 && var.publish_silence_alert_s % 60 == 0
    error_message = "publish_silence_alert_s must be whole minutes from 300 to 84600 (23.5 hours, Cloud Monitoring's longest absence)."
  }
}
