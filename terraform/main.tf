# What every file shares: the functions, their triggers and the environment each
# one's code reads. tests/test_terraform.py checks these against functions/main.py
# and functions/cartcast/settings.py, so keep the keys literal.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # Entry points of functions/main.py. `short` names the service accounts (IDs are
  # 6 to 30 characters); `clients` marks the two functions stores and people call.
  functions = {
    api                = { short = "api", clients = true }
    generate_caption   = { short = "caption", clients = true }
    publish_due_posts  = { short = "publish", clients = false }
    poll_mentions      = { short = "poll", clients = false }
    score_sentiment    = { short = "score", clients = false }
    rollup_kpis        = { short = "rollup", clients = false }
    drain_caption_jobs = { short = "drain", clients = false }
  }
  event_functions = { for name, f in local.functions : name => f if !f.clients }

  # Pub/Sub topics each event function is subscribed to. Ticks come from Cloud
  # Scheduler jobs; mentions from poll_mentions (CARTCAST_MENTIONS_TOPIC).
  subscriptions = {
    publish = { function = "publish_due_posts", topic = "publish" }
    sweep   = { function = "publish_due_posts", topic = "sweep" }
    poll    = { function = "poll_mentions", topic = "poll" }
    rollup  = { function = "rollup_kpis", topic = "rollup" }
    drain   = { function = "drain_caption_jobs", topic = "drain" }
    score   = { function = "score_sentiment", topic = "mentions" }
  }

  # Topic names. The tick topics carry the names the local stand-ins use
  # (infra/local_cloud.py), so a CloudEvent's source reads the same in both.
  topics = {
    publish  = "${var.name_prefix}-publish_due_posts"
    sweep    = "${var.name_prefix}-sweep_missed_posts"
    poll     = "${var.name_prefix}-poll_mentions"
    rollup   = "${var.name_prefix}-rollup_kpis"
    drain    = "${var.name_prefix}-drain_caption_jobs"
    mentions = "${var.name_prefix}-mentions"
  }

  # Cloud Scheduler jobs, each publishing to its tick topic. The sweep's message
  # is {"sweep": true}: publish_due_posts runs the missed-post sweep for it
  # (decision 0012). Every message has a body: a push without data is not
  # recognised as a Pub/Sub message by functions-framework.
  scheduler_jobs = {
    publish = { topic = "publish", schedule = var.schedules.publish, payload = { tick = "publish_due_posts" } }
    sweep   = { topic = "sweep", schedule = var.schedules.sweep, payload = { sweep = true } }
    poll    = { topic = "poll", schedule = var.schedules.poll, payload = { tick = "poll_mentions" } }
    rollup  = { topic = "rollup", schedule = var.schedules.rollup, payload = { tick = "rollup_kpis" } }
    drain   = { topic = "drain", schedule = var.schedules.drain, payload = { tick = "drain_caption_jobs" } }
  }

  # Secrets, by the environment variable that carries them.
  secrets = {
    CARTCAST_OPERATOR_KEY    = "${var.name_prefix}-operator-key"
    GEMINI_API_KEY           = "${var.name_prefix}-gemini-api-key"
    CARTCAST_CONSOLE_SECRET  = "${var.name_prefix}-console-secret"
    CARTCAST_X_CLIENT_SECRET = "${var.name_prefix}-x-client-secret"
  }

  # The secrets each function's code reads (tests/test_terraform.py derives the
  # same from the code). generate_caption runs api.handle_caption_request alone:
  # it authenticates keys (the operator's too) and writes captions with Gemini,
  # and never reaches the console's sessions or the X app's client.
  function_secrets = {
    api                = ["CARTCAST_OPERATOR_KEY", "GEMINI_API_KEY", "CARTCAST_CONSOLE_SECRET", "CARTCAST_X_CLIENT_SECRET"]
    generate_caption   = ["CARTCAST_OPERATOR_KEY", "GEMINI_API_KEY"]
    publish_due_posts  = ["CARTCAST_X_CLIENT_SECRET"]
    poll_mentions      = ["GEMINI_API_KEY", "CARTCAST_X_CLIENT_SECRET"]
    score_sentiment    = ["GEMINI_API_KEY"]
    rollup_kpis        = ["CARTCAST_X_CLIENT_SECRET"]
    drain_caption_jobs = ["GEMINI_API_KEY"]
  }

  # The functions that call X for a brand: they open its sealed tokens with the
  # token key and refresh them with the X app's OAuth client (decision 0030).
  x_token_functions = ["api", "publish_due_posts", "poll_mentions", "rollup_kpis"]
  token_key_version = "${google_secret_manager_secret.token_key.id}/versions/latest"
  # What each function is given: its secrets, less the ones the deployment has no
  # value for. Cloud Run will not deploy a revision naming a secret without a
  # version, so without Gemini (gemini_enabled = false), without an X app
  # (x_client_id empty) or with a public X client (x_client_confidential = false:
  # it has no secret, and x_oauth sends its id alone) README step 2 skips that
  # secret and no function names it.
  granted_secrets = {
    for name, wanted in local.function_secrets :
    name => [
      for env in wanted : env
      if(env != "GEMINI_API_KEY" || var.gemini_enabled) && (env != "CARTCAST_X_CLIENT_SECRET" || (var.x_client_id != "" && var.x_client_confidential))
    ]
  }

  # Settings that settings.load holds against GEMINI_API_KEY (with
  # CARTCAST_SENTIMENT_ENGINE=gemini it refuses to start without the key): they
  # reach only the functions given the key, so that publish_due_posts and
  # rollup_kpis, which never call Gemini, still start. variables.tf refuses them
  # with gemini_enabled = false.
  needs_gemini_key = ["CARTCAST_SENTIMENT_ENGINE"]
  function_settings = {
    for name in keys(local.functions) : name => {
      for key, value in var.settings : key => value
      if !contains(local.needs_gemini_key, key) || contains(local.granted_secrets[name], "GEMINI_API_KEY")
    }
  }

  # Every function: the cloud's settings and its own database user.
  common_env = {
    CARTCAST_ENV         = "cloud"
    CARTCAST_PUBSUB      = "google"
    GOOGLE_CLOUD_PROJECT = var.project_id
    CLOUD_SQL_INSTANCE   = google_sql_database_instance.main.connection_name
    DB_NAME              = google_sql_database.cartcast.name
    DB_IAM_AUTH          = "true"
    LOG_LEVEL            = var.log_level
  }

  # What a function's code reads beyond the common set, wired from the resources.
  function_env = {
    api = {
      CARTCAST_SCHEDULER_JOB       = google_cloud_scheduler_job.tick["publish"].id
      CARTCAST_SWEEP_SCHEDULER_JOB = google_cloud_scheduler_job.tick["sweep"].id
      CARTCAST_X_CLIENT_ID         = var.x_client_id
      CARTCAST_X_REDIRECT_URI      = var.x_redirect_uri
      CARTCAST_TOKEN_KEY_SECRET    = local.token_key_version
      # The console's status page reads it without consuming (iam.tf).
      CARTCAST_DEAD_LETTER_SUBSCRIPTION = google_pubsub_subscription.dead_letter.name
    }
    # The caption handler alone: no Scheduler job, X app or token key (it calls
    # no X API and pauses nothing), only the common set and its tuning.
    generate_caption = {}
    # The three that POST to brands' webhooks start no POST after a quarter of
    # their timeout, and end at most one webhook timeout past it (delivery_budget.py).
    publish_due_posts = {
      CARTCAST_X_CLIENT_ID      = var.x_client_id
      CARTCAST_X_REDIRECT_URI   = var.x_redirect_uri
      CARTCAST_TOKEN_KEY_SECRET = local.token_key_version
      CARTCAST_WEBHOOK_BUDGET_S = tostring(floor(var.functions["publish_due_posts"].timeout_s / 4))
    }
    poll_mentions = {
      CARTCAST_MENTIONS_TOPIC   = google_pubsub_topic.topic["mentions"].name
      CARTCAST_X_CLIENT_ID      = var.x_client_id
      CARTCAST_X_REDIRECT_URI   = var.x_redirect_uri
      CARTCAST_TOKEN_KEY_SECRET = local.token_key_version
      # A poll holds its brand this long: no run of the function outlives it.
      CARTCAST_MENTION_POLL_LEASE_S = tostring(var.functions["poll_mentions"].timeout_s)
      CARTCAST_WEBHOOK_BUDGET_S     = tostring(floor(var.functions["poll_mentions"].timeout_s / 4))
      # A tick's claim whose run is past this is taken over (decision 0078).
      CARTCAST_FUNCTION_TIMEOUT_S = tostring(var.functions["poll_mentions"].timeout_s)
    }
    score_sentiment = {
      CARTCAST_WEBHOOK_BUDGET_S = tostring(floor(var.functions["score_sentiment"].timeout_s / 4))
    }
    rollup_kpis = {
      CARTCAST_X_CLIENT_ID        = var.x_client_id
      CARTCAST_X_REDIRECT_URI     = var.x_redirect_uri
      CARTCAST_TOKEN_KEY_SECRET   = local.token_key_version
      CARTCAST_FUNCTION_TIMEOUT_S = tostring(var.functions["rollup_kpis"].timeout_s)
    }
    # A chunk started at the end of the budget lasts at most two Gemini calls and
    # a pause (caption_drain.py); the margin is that pause and the chunk's writes.
    drain_caption_jobs = {
      CARTCAST_CAPTION_DRAIN_BUDGET_S = tostring(var.functions["drain_caption_jobs"].timeout_s - 2 * local.gemini_timeout_s - local.caption_chunk_margin_s)
    }
  }

  # GEMINI_TIMEOUT_S as the functions read it (settings.py's default when unset);
  # variables.tf keeps the drain's budget at least 10 s with these.
  gemini_timeout_s       = try(tonumber(var.settings["GEMINI_TIMEOUT_S"]), 20)
  caption_chunk_margin_s = 20

  # A PostgreSQL IAM user is the service account's email without the domain.
  function_db_users = {
    for name, sa in google_service_account.function :
    name => trimsuffix(sa.email, ".gserviceaccount.com")
  }
}
