# Secret Manager holds the values; Terraform creates each secret empty and grants
# each function access to the ones its code reads. Values are added with
# `gcloud secrets versions add` (README, "Deploy"): never in a .tf or .tfvars file,
# never in the state. A function reads its version (var.secret_versions, or the
# latest) when an instance starts; naming a new version redeploys the functions
# that hold the secret, which is how a rotation reaches every instance.
#
# Per-brand X tokens and store webhook secrets are not deployment secrets: each
# brand sets its own through the API and they live in its database row. The X
# tokens are sealed there under the token key below (decision 0030), which the
# functions read through the Secret Manager client, not as an environment variable.

resource "google_secret_manager_secret" "secret" {
  for_each = local.secrets

  secret_id = each.value

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

# Access to one secret, for each function whose code reads it.
resource "google_secret_manager_secret_iam_member" "function" {
  for_each = merge([
    for name, envs in local.granted_secrets : {
      for env in envs : "${name}/${env}" => { function = name, env = env }
    }
  ]...)

  secret_id = google_secret_manager_secret.secret[each.value.env].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.value.function].member
}

# The key that wraps each brand's X token keys: 32 random bytes in base64, added
# with gcloud (README, "Deploy"). Read by the functions that call X for a brand.
resource "google_secret_manager_secret" "token_key" {
  secret_id = "${var.name_prefix}-token-key"

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

# Access to the token key: the functions that open or seal brands' X tokens
# (local.x_token_functions) read it once per instance.
resource "google_secret_manager_secret_iam_member" "token_key" {
  for_each = toset(local.x_token_functions)

  secret_id = google_secret_manager_secret.token_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function[each.value].member
}
