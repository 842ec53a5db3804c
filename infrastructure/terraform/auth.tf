# Credentials the services and NATS share, all in Secrets Manager and given to
# the tasks through their secrets list, never their environment: one NATS
# password per service user, and the key the gateway checks tokens with when
# no identity provider's key set (auth_jwks_url) is used.

locals {
  # NATS user => the variable the NATS nodes read its password from
  # (infrastructure/docker/nats-users.conf, which nats.tf appends to every
  # node's configuration) and the service that connects as it.
  nats_users = {
    gateway   = { variable = "NATS_GATEWAY_PASSWORD", service = "api-gateway" }
    broadcast = { variable = "NATS_BROADCAST_PASSWORD", service = "broadcast-service" }
    archiver  = { variable = "NATS_ARCHIVER_PASSWORD", service = "archival-worker" }
  }

  # The users and their permissions, shared with Docker Compose so that both
  # deployments run what infrastructure/check/natsauth_test.go proves.
  nats_users_conf = file("${path.module}/../docker/nats-users.conf")

  # Whoever deploys prod names how tokens are checked (variables.tf refuses
  # a prod plan without); dev and staging get a generated key otherwise, so
  # the gateway starts with authentication on.
  auth_generated_secret = var.auth_jwks_url == "" && var.auth_jwt_secret_arn == ""
  auth_jwt_secret_arn   = local.auth_generated_secret ? aws_secretsmanager_secret.jwt[0].arn : var.auth_jwt_secret_arn
}

# Generated once when the secret is created, then kept (later plans ignore
# the newly generated value). Letters and digits: nothing a configuration
# file or a shell would need escaped.
data "aws_secretsmanager_random_password" "nats" {
  for_each = local.nats_users

  password_length     = 40
  exclude_punctuation = true
  include_space       = false
}

resource "aws_secretsmanager_secret" "nats" {
  for_each = local.nats_users

  name                    = "${local.name}-nats-${each.key}"
  description             = "Password of the NATS user ${each.key} (${each.value.service})"
  recovery_window_in_days = var.environment == "prod" ? 7 : 0
}

resource "aws_secretsmanager_secret_version" "nats" {
  for_each = local.nats_users

  secret_id     = aws_secretsmanager_secret.nats[each.key].id
  secret_string = data.aws_secretsmanager_random_password.nats[each.key].random_password

  lifecycle {
    ignore_changes = [secret_string]
  }
}

# The HS256 key of dev and staging when none is given: 64 characters, well
# over the 32 bytes the gateway requires. Tokens are signed with it by
# whoever may read the secret.
data "aws_secretsmanager_random_password" "jwt" {
  count = local.auth_generated_secret ? 1 : 0

  password_length     = 64
  exclude_punctuation = true
  include_space       = false
}

resource "aws_secretsmanager_secret" "jwt" {
  count = local.auth_generated_secret ? 1 : 0

  name                    = "${local.name}-auth-jwt"
  description             = "HS256 key the API gateway checks bearer tokens with (AUTH_JWT_SECRET)"
  recovery_window_in_days = 0
}

resource "aws_secretsmanager_secret_version" "jwt" {
  count = local.auth_generated_secret ? 1 : 0

  secret_id     = aws_secretsmanager_secret.jwt[0].id
  secret_string = data.aws_secretsmanager_random_password.jwt[0].random_password

  lifecycle {
    ignore_changes = [secret_string]
  }
}
