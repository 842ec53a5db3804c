# ECS Fargate: the cluster, the three service task definitions and services,
# their log groups and IAM roles. The NATS nodes are in nats.tf.

resource "aws_ecs_cluster" "main" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = var.environment == "prod" ? "enabled" : "disabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "service" {
  for_each = toset(["api-gateway", "broadcast-service", "archival-worker", "nats"])

  name              = "/ecs/${local.name}/${each.key}"
  retention_in_days = var.log_retention_days
}

# ---------------------------------------------------------------- IAM

locals {
  # Every role here is assumed by ECS tasks and by nothing else.
  ecs_tasks_assume_role = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

# The execution role lets ECS pull images, write logs and read exactly the
# secrets the tasks get injected; the services themselves call no AWS API.
resource "aws_iam_role" "execution" {
  name               = "${local.name}-ecs-execution"
  assume_role_policy = local.ecs_tasks_assume_role
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_secrets" {
  name = "read-task-secrets"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = local.secret_arns
    }]
  })
}

# The tasks' role, NATS's too: no permissions (they use no AWS API).
resource "aws_iam_role" "task" {
  name               = "${local.name}-ecs-task"
  assume_role_policy = local.ecs_tasks_assume_role
}

# ---------------------------------------------------------------- configuration

locals {
  secret_arns = compact(concat([
    aws_db_instance.postgres.master_user_secret[0].secret_arn,
    aws_secretsmanager_secret.redis.arn,
    local.auth_jwt_secret_arn,
  ], [for u in sort(keys(local.nats_users)) : aws_secretsmanager_secret.nats[u].arn]))

  image = { for s in local.services : s => "${aws_ecr_repository.service[s].repository_url}:${var.image_tag}" }

  # The gateway's tasks by their Cloud Map name, on the port the ALB
  # forwards to: plain HTTP inside the VPC, as from the ALB.
  gateway_internal_url = "http://${aws_service_discovery_service.gateway.name}.${local.namespace}:8080"

  # The environment each service reads (README "Environment Variables"),
  # and the secrets injected from Secrets Manager next to it.
  gateway_environment = merge({
    SERVER_ADDR = ":8080"
    # MemoryDB is always a Redis Cluster, reached over TLS as the gateway's
    # ACL user; the password comes from Secrets Manager (gateway_secrets).
    # Its certificates are signed by a public CA, which the image trusts.
    REDIS_ADDR        = local.redis_addr
    REDIS_CLUSTER     = "true"
    REDIS_TLS         = "true"
    REDIS_TLS_CA_FILE = ""
    REDIS_USERNAME    = aws_memorydb_user.gateway.user_name
    REDIS_DB          = "0"
    REDIS_STRATEGY    = var.redis_strategy
    NATS_URL          = local.nats_url
    # Its own NATS user; the password is a secret (gateway_secrets).
    NATS_USER = "gateway"
    # The gateway creates the stream, with a replica on each of the three
    # NATS nodes (nats.tf).
    NATS_STREAM_REPLICAS = "3"
    POSTGRES_URL         = local.postgres_url
    # Never on here: an unknown item is a 404, not a new auction anyone can
    # open by reading its URL.
    AUTO_CREATE_ITEMS         = "false"
    RATE_LIMIT_PER_USER       = tostring(var.rate_limit_per_user)
    RATE_LIMIT_PER_IP         = tostring(var.rate_limit_per_ip)
    CORS_ALLOWED_ORIGINS      = local.public_url
    SOFT_CLOSE                = var.soft_close
    SOFT_CLOSE_MAX_EXTENSIONS = "120"
    IDEMPOTENCY_KEYS_PER_USER = "1000"
    DEFAULT_AUCTION_DURATION  = var.default_auction_duration
    # Behind the ALB the client's address is the last X-Forwarded-For entry;
    # without this every request would share the ALB's per-IP rate limit.
    TRUST_PROXY_HEADERS = "true"
    PREFILTER           = "true"
    COALESCE            = "true"
    # Closed items leave MemoryDB 30 days after closing; RDS answers for them.
    CLOSED_ITEM_RETENTION = "720h"
    MAX_AUCTION_DURATION  = "720h"
    LOG_LEVEL             = var.log_level
    LOG_FORMAT            = "json"
  }, local.auth_environment)
  gateway_secrets = merge({
    PGPASSWORD     = local.db_password_from
    REDIS_PASSWORD = aws_secretsmanager_secret.redis.arn
    NATS_PASSWORD  = aws_secretsmanager_secret.nats["gateway"].arn
  }, local.auth_secrets)

  # How tokens are checked, the same for the gateway and the broadcast
  # service's personal channels: a token the gateway accepts opens its
  # user's channel. Always on, and nobody can mint a token here:
  # development tokens are for a local stack only. Against the identity
  # provider's key set, or with the HS256 key from Secrets Manager
  # (auth_secrets).
  auth_environment = merge({
    AUTH_DISABLED     = "false"
    AUTH_DEV_TOKENS   = "false"
    AUTH_ROLES_CLAIM  = "roles"
    AUTH_JWKS_REFRESH = "15m"
    },
    var.auth_jwks_url == "" ? {} : { AUTH_JWKS_URL = var.auth_jwks_url },
    var.auth_issuer == "" ? {} : { AUTH_ISSUER = var.auth_issuer },
    var.auth_audience == "" ? {} : { AUTH_AUDIENCE = var.auth_audience },
  )
  auth_secrets = var.auth_jwks_url != "" ? {} : { AUTH_JWT_SECRET = local.auth_jwt_secret_arn }

  broadcast_environment = merge({
    SERVER_ADDR     = ":8081"
    NATS_URL        = local.nats_url
    NATS_USER       = "broadcast"
    ALLOWED_ORIGINS = local.public_url
    MAX_CONNECTIONS = tostring(var.max_connections)
    # Viewers reach the tasks through the ALB, so the TCP peer is the ALB;
    # it appends the client's address as the rightmost X-Forwarded-For
    # entry, which is what the per-address limit must count.
    WS_TRUST_FORWARDED_FOR = "true"
    WS_MAX_CONNS_PER_IP    = "100"
    WS_MAX_CATCHUP_REPLAYS = "64"
    WS_CATCHUP_WAIT        = "10s"
    # No development sign-in (auth_environment); the embedding site hands
    # the page its token.
    PAGE_EMBED_ORIGINS = ""
    # The page and the API share the ALB's origin.
    GATEWAY_URL = local.public_url
    # The service's own calls (a personal channel's items) go straight to
    # the gateway's tasks through Cloud Map, not out through NAT to the
    # public ALB, whose allowed_ingress_cidrs need not include the NAT.
    GATEWAY_INTERNAL_URL  = local.gateway_internal_url
    ENDING_SOON_LEAD      = var.ending_soon_lead
    WS_MAX_CONNS_PER_USER = tostring(var.max_conns_per_user)
    SEND_QUEUE_SIZE       = "256"
    SOCKET_SEND_BUFFER    = "0"
    # Pings keep idle viewer sockets well inside the ALB idle timeout.
    PING_INTERVAL    = "25s"
    PONG_TIMEOUT     = "60s"
    WRITE_TIMEOUT    = "10s"
    GAP_TIMEOUT      = "5s"
    SHUTDOWN_TIMEOUT = "15s" # under the task's 30s stopTimeout
    LOG_LEVEL        = var.log_level
    LOG_FORMAT       = "json"
  }, local.auth_environment)
  broadcast_secrets = merge({
    NATS_PASSWORD = aws_secretsmanager_secret.nats["broadcast"].arn
  }, local.auth_secrets)

  archival_environment = {
    POSTGRES_URL        = local.postgres_url
    NATS_URL            = local.nats_url
    NATS_USER           = "archiver"
    HTTP_ADDR           = ":8082"
    BATCH_SIZE          = tostring(var.batch_size)
    BATCH_WAIT          = var.batch_wait
    ACK_WAIT            = "30s"
    WRITERS             = "2"
    ARCHIVE_PURGE_AFTER = "24h"
    LOG_LEVEL           = var.log_level
    LOG_FORMAT          = "json"
  }
  archival_secrets = {
    PGPASSWORD    = local.db_password_from
    NATS_PASSWORD = aws_secretsmanager_secret.nats["archiver"].arn
  }

  # Shared by the three service containers; the image's own probe, since the
  # distroless images have no shell.
  containers = {
    api-gateway = {
      port        = 8080
      environment = local.gateway_environment
      secrets     = local.gateway_secrets
      nofile      = 65536
    }
    broadcast-service = {
      port        = 8081
      environment = local.broadcast_environment
      secrets     = local.broadcast_secrets
      # One file descriptor per viewer.
      nofile = 1048576
    }
    archival-worker = {
      port        = 8082
      environment = local.archival_environment
      secrets     = local.archival_secrets
      nofile      = 65536
    }
  }

  sizes = {
    api-gateway       = var.gateway
    broadcast-service = var.broadcast
    archival-worker   = var.archival
  }
}

resource "aws_ecs_task_definition" "service" {
  for_each = local.containers

  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.sizes[each.key].cpu
  memory                   = local.sizes[each.key].memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([{
    name      = each.key
    image     = local.image[each.key]
    essential = true
    portMappings = [{
      containerPort = each.value.port
      protocol      = "tcp"
    }]
    environment = [for k in sort(keys(each.value.environment)) : { name = k, value = each.value.environment[k] }]
    secrets     = [for k in sort(keys(each.value.secrets)) : { name = k, valueFrom = each.value.secrets[k] }]
    healthCheck = {
      command     = ["CMD", "/app/healthcheck", "http://127.0.0.1:${each.value.port}/health"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 15
    }
    # Graceful shutdown: stop accepting, drain NATS, finish the batch in hand.
    stopTimeout = 30
    ulimits = [{
      name      = "nofile"
      softLimit = each.value.nofile
      hardLimit = each.value.nofile
    }]
    readonlyRootFilesystem = true
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service[each.key].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

# ---------------------------------------------------------------- services

resource "aws_ecs_service" "gateway" {
  name                              = "api-gateway"
  cluster                           = aws_ecs_cluster.main.id
  task_definition                   = aws_ecs_task_definition.service["api-gateway"].arn
  desired_count                     = var.gateway.desired_count
  launch_type                       = "FARGATE"
  health_check_grace_period_seconds = 30

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.gateway.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway.arn
    container_name   = "api-gateway"
    container_port   = 8080
  }

  # api-gateway.<namespace>: the broadcast tasks' way in (GATEWAY_INTERNAL_URL).
  service_registries {
    registry_arn = aws_service_discovery_service.gateway.arn
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Autoscaling owns the count after creation.
  lifecycle {
    ignore_changes = [desired_count]
  }

  # ECS can only register tasks in a target group the ALB already routes to.
  depends_on = [aws_lb_listener_rule.api]
}

# api-gateway.<project>-<env>.internal: every healthy gateway task, for the
# broadcast service's calls from inside the VPC.
resource "aws_service_discovery_service" "gateway" {
  name = "api-gateway"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.main.id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10 # a replaced task drops out within seconds
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }
}

resource "aws_ecs_service" "broadcast" {
  name                              = "broadcast-service"
  cluster                           = aws_ecs_cluster.main.id
  task_definition                   = aws_ecs_task_definition.service["broadcast-service"].arn
  desired_count                     = var.broadcast.desired_count
  launch_type                       = "FARGATE"
  health_check_grace_period_seconds = 30

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.broadcast.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.broadcast.arn
    container_name   = "broadcast-service"
    container_port   = 8081
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener_rule.ws, aws_lb_listener_rule.page]
}

resource "aws_ecs_service" "archival" {
  name            = "archival-worker"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.service["archival-worker"].arn
  desired_count   = var.archival.desired_count
  launch_type     = "FARGATE"

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.archival.id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}
