# Offline checks of what matters in this configuration, with a mocked AWS
# provider: `terraform test` (see `make infra-check`). Computed values the
# configuration indexes into get fixed mock values; the rest are generated.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    }
  }

  # Secrets Manager generates the gateway's Redis password (40 characters).
  mock_data "aws_secretsmanager_random_password" {
    defaults = {
      random_password = "Mock0Redis0Password0000000000000000000040"
    }
  }

  mock_resource "aws_db_instance" {
    defaults = {
      address = "bidding-dev-postgres.abc.eu-west-1.rds.amazonaws.com"
      port    = 5432
      master_user_secret = [{
        secret_arn    = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-abcdef"
        kms_key_id    = "arn:aws:kms:eu-west-1:123456789012:key/1234"
        secret_status = "active"
      }]
    }
  }

  mock_resource "aws_lb" {
    defaults = {
      arn        = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/bidding-dev-alb/1234"
      arn_suffix = "app/bidding-dev-alb/1234"
      dns_name   = "bidding-dev-alb-1234.eu-west-1.elb.amazonaws.com"
    }
  }

  mock_resource "aws_memorydb_cluster" {
    defaults = {
      cluster_endpoint = [{
        address = "clustercfg.bidding-dev-redis.abc123.memorydb.eu-west-1.amazonaws.com"
        port    = 6379
      }]
    }
  }
}

# Distinct, well-formed ARNs where the provider validates them, so a rule
# pointing at the wrong target group cannot pass by accident.
override_resource {
  target = aws_lb_target_group.broadcast
  values = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/bidding-dev-broadcast/1111", arn_suffix = "targetgroup/bidding-dev-broadcast/1111" }
}

override_resource {
  target = aws_lb_target_group.gateway
  values = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/bidding-dev-gateway/2222", arn_suffix = "targetgroup/bidding-dev-gateway/2222" }
}

override_resource {
  target = aws_lb_listener.http
  values = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/bidding-dev-alb/1234/80" }
}

override_resource {
  target = aws_lb_listener.https
  values = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/bidding-dev-alb/1234/443" }
}

override_resource {
  target = aws_iam_role.execution
  values = { arn = "arn:aws:iam::123456789012:role/bidding-dev-ecs-execution" }
}

override_resource {
  target = aws_iam_role.task
  values = { arn = "arn:aws:iam::123456789012:role/bidding-dev-ecs-task" }
}

override_resource {
  target = aws_service_discovery_service.nats["nats-1"]
  values = { arn = "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-nats1" }
}

override_resource {
  target = aws_service_discovery_service.nats["nats-2"]
  values = { arn = "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-nats2" }
}

override_resource {
  target = aws_service_discovery_service.nats["nats-3"]
  values = { arn = "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-nats3" }
}

override_resource {
  target = aws_service_discovery_service.gateway
  values = { arn = "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-gateway" }
}

override_resource {
  target = aws_secretsmanager_secret.redis
  values = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bidding-dev-redis-gateway-AbCdEf" }
}

# One distinct id per security group, so reachability checks compare real differences.
override_resource {
  target = aws_security_group.alb
  values = { id = "sg-alb0000" }
}

override_resource {
  target = aws_security_group.gateway
  values = { id = "sg-gateway0001" }
}

override_resource {
  target = aws_security_group.broadcast
  values = { id = "sg-broadcast0002" }
}

override_resource {
  target = aws_security_group.archival
  values = { id = "sg-archival0003" }
}

override_resource {
  target = aws_security_group.nats
  values = { id = "sg-nats0004" }
}

override_resource {
  target = aws_security_group.redis
  values = { id = "sg-redis0005" }
}

override_resource {
  target = aws_security_group.rds
  values = { id = "sg-rds0006" }
}

variables {
  environment = "dev"
  aws_region  = "eu-west-1"
}

run "websocket_routing" {
  command = apply

  assert {
    condition     = aws_lb_listener_rule.ws.action[0].type == "forward" && aws_lb_listener_rule.ws.action[0].target_group_arn == aws_lb_target_group.broadcast.arn
    error_message = "the /ws rule must forward to the broadcast target group"
  }

  assert {
    condition     = contains(flatten([for c in aws_lb_listener_rule.ws.condition : [for p in c.path_pattern : tolist(p.values)]]), "/ws")
    error_message = "the /ws rule must match the /ws path"
  }

  assert {
    condition     = aws_lb_target_group.broadcast.stickiness[0].enabled && aws_lb_target_group.broadcast.stickiness[0].type == "lb_cookie"
    error_message = "the broadcast target group must use sticky sessions"
  }

  assert {
    condition     = aws_lb.main.idle_timeout >= 300
    error_message = "the ALB idle timeout must be minutes long for WebSockets (got ${aws_lb.main.idle_timeout}s)"
  }

  assert {
    condition     = aws_lb_listener_rule.api.action[0].target_group_arn == aws_lb_target_group.gateway.arn && toset(flatten([for c in aws_lb_listener_rule.api.condition : [for p in c.path_pattern : tolist(p.values)]])) == toset(["/api/*", "/health"])
    error_message = "/api/* and /health must go to the gateway"
  }

  assert {
    condition     = aws_lb_listener_rule.page.action[0].target_group_arn == aws_lb_target_group.broadcast.arn && length(setsubtract(["/", "/items/*", "/static/*", "/config.js"], flatten([for c in aws_lb_listener_rule.page.condition : [for p in c.path_pattern : tolist(p.values)]]))) == 0
    error_message = "the live page and its assets must go to the broadcast service"
  }

  assert {
    condition     = aws_lb_listener_rule.ws.listener_arn == aws_lb_listener.http.arn && length(aws_lb_listener.https) == 0
    error_message = "without a certificate, the rules sit on the HTTP listener and there is no HTTPS listener"
  }

  assert {
    condition     = output.websocket_url == "ws://bidding-dev-alb-1234.eu-west-1.elb.amazonaws.com/ws"
    error_message = "websocket_url is ${output.websocket_url}"
  }
}

run "https_when_certificate_given" {
  command = apply

  variables {
    certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abcd"
    domain_name     = "auctions.example.com"
  }

  assert {
    condition     = length(aws_lb_listener.https) == 1 && aws_lb_listener.https[0].certificate_arn == var.certificate_arn
    error_message = "a certificate must create the HTTPS listener"
  }

  assert {
    condition     = aws_lb_listener_rule.ws.listener_arn == aws_lb_listener.https[0].arn
    error_message = "with HTTPS the routing rules must sit on the HTTPS listener"
  }

  assert {
    condition     = aws_lb_listener.http.default_action[0].type == "redirect" && aws_lb_listener.http.default_action[0].redirect[0].protocol == "HTTPS"
    error_message = "with HTTPS, plain HTTP must redirect"
  }

  assert {
    condition     = output.public_url == "https://auctions.example.com" && output.websocket_url == "wss://auctions.example.com/ws"
    error_message = "public URLs must use the domain over TLS, got ${output.public_url} and ${output.websocket_url}"
  }
}

run "task_definitions" {
  command = apply

  # The variables each service reads (README "Environment Variables").
  variables {
    gateway_env   = ["SERVER_ADDR", "REDIS_ADDR", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_TLS", "REDIS_TLS_CA_FILE", "REDIS_DB", "REDIS_CLUSTER", "REDIS_STRATEGY", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_STREAM_REPLICAS", "POSTGRES_URL", "AUTO_CREATE_ITEMS", "AUTH_JWT_SECRET", "RATE_LIMIT_PER_USER", "RATE_LIMIT_PER_IP", "CORS_ALLOWED_ORIGINS", "SOFT_CLOSE", "SOFT_CLOSE_MAX_EXTENSIONS", "IDEMPOTENCY_KEYS_PER_USER", "DEFAULT_AUCTION_DURATION", "TRUST_PROXY_HEADERS", "PREFILTER", "COALESCE", "CLOSED_ITEM_RETENTION", "AUTH_DISABLED", "AUTH_DEV_TOKENS", "AUTH_ROLES_CLAIM", "AUTH_JWKS_REFRESH", "MAX_AUCTION_DURATION", "LOG_LEVEL", "LOG_FORMAT"]
    broadcast_env = ["SERVER_ADDR", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "ALLOWED_ORIGINS", "MAX_CONNECTIONS", "WS_MAX_CONNS_PER_IP", "WS_TRUST_FORWARDED_FOR", "WS_MAX_CATCHUP_REPLAYS", "WS_CATCHUP_WAIT", "AUTH_DEV_TOKENS", "AUTH_JWT_SECRET", "AUTH_DISABLED", "AUTH_ROLES_CLAIM", "AUTH_JWKS_REFRESH", "PAGE_EMBED_ORIGINS", "GATEWAY_URL", "GATEWAY_INTERNAL_URL", "ENDING_SOON_LEAD", "WS_MAX_CONNS_PER_USER", "SEND_QUEUE_SIZE", "SOCKET_SEND_BUFFER", "PING_INTERVAL", "PONG_TIMEOUT", "WRITE_TIMEOUT", "GAP_TIMEOUT", "SHUTDOWN_TIMEOUT", "LOG_LEVEL", "LOG_FORMAT"]
    archival_env  = ["POSTGRES_URL", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "HTTP_ADDR", "BATCH_SIZE", "BATCH_WAIT", "ACK_WAIT", "WRITERS", "ARCHIVE_PURGE_AFTER", "LOG_LEVEL", "LOG_FORMAT"]
  }

  assert {
    condition = alltrue([for n in var.gateway_env : contains(
      concat(jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment[*].name,
    jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].secrets[*].name), n)])
    error_message = "the gateway task definition lacks some of: ${join(", ", var.gateway_env)}"
  }

  assert {
    condition = alltrue([for n in var.broadcast_env : contains(
      concat(jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].environment[*].name,
    jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].secrets[*].name), n)])
    error_message = "the broadcast task definition lacks some of: ${join(", ", var.broadcast_env)}"
  }

  assert {
    condition = alltrue([for n in var.archival_env : contains(
      concat(jsondecode(aws_ecs_task_definition.service["archival-worker"].container_definitions)[0].environment[*].name,
    jsondecode(aws_ecs_task_definition.service["archival-worker"].container_definitions)[0].secrets[*].name), n)])
    error_message = "the archival task definition lacks some of: ${join(", ", var.archival_env)}"
  }

  assert {
    condition = alltrue([for k, td in aws_ecs_task_definition.service :
      jsondecode(td.container_definitions)[0].logConfiguration.logDriver == "awslogs" &&
    jsondecode(td.container_definitions)[0].logConfiguration.options["awslogs-group"] == aws_cloudwatch_log_group.service[k].name])
    error_message = "every service container must log to its own CloudWatch log group"
  }

  assert {
    condition = alltrue([for n, td in aws_ecs_task_definition.nats :
      jsondecode(td.container_definitions)[0].logConfiguration.options["awslogs-group"] == aws_cloudwatch_log_group.service["nats"].name &&
    jsondecode(td.container_definitions)[0].logConfiguration.options["awslogs-stream-prefix"] == n])
    error_message = "every NATS node must log to the NATS log group under its own name"
  }

  assert {
    condition = alltrue([for k, td in aws_ecs_task_definition.service :
    jsondecode(td.container_definitions)[0].healthCheck.command[1] == "/app/healthcheck"])
    error_message = "every service container must use the image's shell-free health probe"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "AUTO_CREATE_ITEMS"] == ["false"]
    error_message = "AWS deployments must never auto-create items"
  }

  assert {
    condition = (
      [for e in jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].environment : e.value if e.name == "WS_TRUST_FORWARDED_FOR"] == ["true"] &&
      [for e in jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].environment : e.value if e.name == "WS_MAX_CONNS_PER_IP"] != ["0"]
    )
    error_message = "behind the ALB the broadcast service must count viewers by the rightmost X-Forwarded-For entry (WS_TRUST_FORWARDED_FOR=true), with the per-address limit on"
  }

  assert {
    condition = alltrue([for svc in ["api-gateway", "broadcast-service"] :
    [for e in jsondecode(aws_ecs_task_definition.service[svc].container_definitions)[0].environment : e.value if e.name == "AUTH_DEV_TOKENS"] == ["false"]])
    error_message = "AWS deployments must never issue development tokens"
  }

  assert {
    condition = (
      [for s in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].secrets : s.valueFrom if s.name == "AUTH_JWT_SECRET"] == [aws_secretsmanager_secret.jwt[0].arn] &&
      !contains(jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment[*].name, "AUTH_JWT_SECRET") &&
      contains(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource, aws_secretsmanager_secret.jwt[0].arn)
    )
    error_message = "without an authentication setting, dev gets a generated HS256 key from Secrets Manager, so the gateway starts with authentication on"
  }

  assert {
    condition = (
      [for s in jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].secrets : s.valueFrom if s.name == "AUTH_JWT_SECRET"] == [aws_secretsmanager_secret.jwt[0].arn] &&
      [for e in jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].environment : e if startswith(e.name, "AUTH_")] == [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e if startswith(e.name, "AUTH_")]
    )
    error_message = "the broadcast service must check personal channels' tokens as the gateway does: the same AUTH_ settings and HS256 key"
  }

  assert {
    condition = (
      [for e in jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].environment : e.value if e.name == "GATEWAY_INTERNAL_URL"] == ["http://api-gateway.bidding-dev.internal:8080"] &&
      one(aws_ecs_service.gateway.service_registries).registry_arn == aws_service_discovery_service.gateway.arn &&
      aws_service_discovery_service.gateway.dns_config[0].namespace_id == aws_service_discovery_private_dns_namespace.main.id
    )
    error_message = "the broadcast service must reach the gateway's tasks by their Cloud Map name (GATEWAY_INTERNAL_URL)"
  }
}

run "nats_users_from_secrets_manager" {
  command = apply

  variables {
    users = { "api-gateway" = "gateway", "broadcast-service" = "broadcast", "archival-worker" = "archiver" }
  }

  assert {
    condition = alltrue([for svc, user in var.users :
      [for e in jsondecode(aws_ecs_task_definition.service[svc].container_definitions)[0].environment : e.value if e.name == "NATS_USER"] == [user] &&
      [for s in jsondecode(aws_ecs_task_definition.service[svc].container_definitions)[0].secrets : s.valueFrom if s.name == "NATS_PASSWORD"] == [aws_secretsmanager_secret.nats[user].arn] &&
    !contains(jsondecode(aws_ecs_task_definition.service[svc].container_definitions)[0].environment[*].name, "NATS_PASSWORD")])
    error_message = "each service must connect as its own NATS user, its password a secret from Secrets Manager"
  }

  assert {
    condition = alltrue([for n, td in aws_ecs_task_definition.nats :
      join(",", sort(jsondecode(td.container_definitions)[0].secrets[*].name)) == "NATS_ARCHIVER_PASSWORD,NATS_BROADCAST_PASSWORD,NATS_GATEWAY_PASSWORD" &&
    alltrue([for s in jsondecode(td.container_definitions)[0].secrets : contains([for u in aws_secretsmanager_secret.nats : u.arn], s.valueFrom)])])
    error_message = "every NATS node must get the users' passwords from Secrets Manager"
  }

  assert {
    condition = alltrue([for n, td in aws_ecs_task_definition.nats :
      strcontains(jsondecode(td.container_definitions)[0].environment[0].value, "authorization {") &&
      strcontains(jsondecode(td.container_definitions)[0].environment[0].value, "password: $NATS_GATEWAY_PASSWORD") &&
    strcontains(jsondecode(td.container_definitions)[0].environment[0].value, "\"$JS.API.STREAM.PURGE.BIDS\"")])
    error_message = "every NATS node must run the shipped users (nats-users.conf) with their passwords from Secrets Manager"
  }

  assert {
    condition     = alltrue([for u in aws_secretsmanager_secret.nats : contains(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource, u.arn)])
    error_message = "the execution role must be allowed to read the NATS passwords"
  }

  assert {
    condition = (
      contains(jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment[*].name, "NATS_STREAM_REPLICAS") &&
      !contains(jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].environment[*].name, "NATS_STREAM_REPLICAS") &&
      !contains(jsondecode(aws_ecs_task_definition.service["archival-worker"].container_definitions)[0].environment[*].name, "NATS_STREAM_REPLICAS")
    )
    error_message = "only the gateway creates the stream, so only it gets NATS_STREAM_REPLICAS"
  }
}

run "redis_is_memorydb_with_tls_and_an_acl_user" {
  command = apply

  assert {
    condition     = aws_memorydb_cluster.redis.tls_enabled && aws_memorydb_cluster.redis.engine == "redis" && startswith(aws_memorydb_cluster.redis.engine_version, "7.")
    error_message = "live state must be in MemoryDB for Redis 7 with TLS required"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "REDIS_ADDR"] == ["clustercfg.bidding-dev-redis.abc123.memorydb.eu-west-1.amazonaws.com:6379"]
    error_message = "the gateway must use MemoryDB's cluster endpoint (and nothing else, such as an ElastiCache endpoint)"
  }

  assert {
    condition = (
      [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "REDIS_CLUSTER"] == ["true"] &&
      [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "REDIS_TLS"] == ["true"]
    )
    error_message = "MemoryDB is a Redis Cluster reached over TLS: the gateway needs REDIS_CLUSTER=true and REDIS_TLS=true"
  }

  assert {
    condition = (
      aws_memorydb_cluster.redis.acl_name == aws_memorydb_acl.redis.name && aws_memorydb_acl.redis.name != "open-access" &&
      aws_memorydb_acl.redis.user_names == toset([aws_memorydb_user.gateway.user_name])
    )
    error_message = "the cluster must use an ACL holding the gateway's user, not open access"
  }

  assert {
    condition = (
      one(aws_memorydb_user.gateway.authentication_mode).type == "password" &&
      startswith(aws_memorydb_user.gateway.access_string, "on ") &&
      strcontains(aws_memorydb_user.gateway.access_string, "-@dangerous")
    )
    error_message = "the gateway's user must be enabled, authenticate with a password and be denied the dangerous commands"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "REDIS_USERNAME"] == [aws_memorydb_user.gateway.user_name]
    error_message = "the gateway must log in as its MemoryDB user (REDIS_USERNAME)"
  }

  assert {
    condition = (
      [for s in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].secrets : s.valueFrom if s.name == "REDIS_PASSWORD"] == [aws_secretsmanager_secret.redis.arn] &&
      !contains(jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment[*].name, "REDIS_PASSWORD") &&
      aws_secretsmanager_secret_version.redis.secret_id == aws_secretsmanager_secret.redis.id
    )
    error_message = "REDIS_PASSWORD must come from the Secrets Manager secret holding the user's password, never the environment"
  }

  assert {
    condition     = contains(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource, aws_secretsmanager_secret.redis.arn)
    error_message = "the execution role must be allowed to read the Redis password secret"
  }

  assert {
    condition     = aws_memorydb_parameter_group.redis.family == "memorydb_redis7" && contains([for p in aws_memorydb_parameter_group.redis.parameter : "${p.name}=${p.value}"], "maxmemory-policy=noeviction")
    error_message = "MemoryDB must refuse writes when full rather than evict auction state"
  }

  assert {
    condition     = aws_memorydb_subnet_group.redis.subnet_ids == toset(aws_subnet.private[*].id) && length(aws_subnet.private) == 3
    error_message = "MemoryDB must use the three private subnets"
  }
}

run "nats_three_node_jetstream_cluster" {
  command = apply

  assert {
    condition     = [for s in [aws_ecs_service.nats_1, aws_ecs_service.nats_2, aws_ecs_service.nats_3] : "${s.name}:${s.desired_count}"] == ["nats-1:1", "nats-2:1", "nats-3:1"]
    error_message = "NATS must run as three services of one task each, nats-1 to nats-3"
  }

  assert {
    condition     = length(toset(flatten([for s in [aws_ecs_service.nats_1, aws_ecs_service.nats_2, aws_ecs_service.nats_3] : tolist(one(s.network_configuration).subnets)]))) == 3
    error_message = "each NATS node must run in its own subnet, so in its own availability zone"
  }

  assert {
    condition = alltrue([for s in [aws_ecs_service.nats_1, aws_ecs_service.nats_2, aws_ecs_service.nats_3] :
    s.deployment_maximum_percent == 100 && s.deployment_minimum_healthy_percent == 0 && s.wait_for_steady_state])
    error_message = "a NATS node's old task must stop before its new one starts (one name, one server), and Terraform must wait for each node before the next"
  }

  assert {
    condition = (
      [for s in [aws_ecs_service.nats_1, aws_ecs_service.nats_2, aws_ecs_service.nats_3] : one(s.service_registries).registry_arn] == [for n in ["nats-1", "nats-2", "nats-3"] : aws_service_discovery_service.nats[n].arn] &&
      [for n in ["nats-1", "nats-2", "nats-3"] : aws_service_discovery_service.nats[n].name] == ["nats-1", "nats-2", "nats-3"]
    )
    error_message = "each NATS node must register under its own stable Cloud Map name"
  }

  assert {
    condition = alltrue([for n, td in aws_ecs_task_definition.nats :
      alltrue([for v in td.volume : length(v.efs_volume_configuration) == 0]) &&
      one(td.ephemeral_storage).size_in_gib >= 21 &&
    jsondecode(td.container_definitions)[0].mountPoints[0].containerPath == "/data"])
    error_message = "the JetStream stores must be on the tasks' own storage, not on EFS (NATS does not support JetStream on NFS)"
  }

  assert {
    condition = alltrue([for n, td in aws_ecs_task_definition.nats : alltrue(concat(
      [for want in ["server_name: \"${n}\"", "jetstream {", "store_dir: \"/data/jetstream\"", "sync_interval: \"2m\"", "name: \"bidding-dev\""] :
      strcontains([for e in jsondecode(td.container_definitions)[0].environment : e.value if e.name == "NATS_CONFIG"][0], want)],
      [for peer in ["nats-1", "nats-2", "nats-3"] :
      strcontains([for e in jsondecode(td.container_definitions)[0].environment : e.value if e.name == "NATS_CONFIG"][0], "\"nats://${peer}.bidding-dev.internal:6222\"")],
    ))])
    error_message = "each node must run JetStream under its own name, with the chosen sync interval, and route to all three nodes"
  }

  assert {
    condition = alltrue([for n, td in aws_ecs_task_definition.nats :
      jsondecode(td.container_definitions)[0].healthCheck.command[0] == "CMD-SHELL" &&
      strcontains(jsondecode(td.container_definitions)[0].healthCheck.command[1], "js-enabled-only") &&
    jsondecode(td.container_definitions)[0].restartPolicy.enabled])
    error_message = "a NATS node must be restarted in place when it crashes and never replaced just for being behind or without quorum"
  }

  assert {
    condition     = [for r in aws_vpc_security_group_ingress_rule.internal : "${r.referenced_security_group_id}:${r.from_port}" if r.security_group_id == aws_security_group.nats.id && r.from_port == 6222] == ["${aws_security_group.nats.id}:6222"]
    error_message = "the NATS nodes must reach each other's cluster port, and nothing else may"
  }

  assert {
    condition = alltrue([for k, td in aws_ecs_task_definition.service :
      [for e in jsondecode(td.container_definitions)[0].environment : e.value if e.name == "NATS_URL"] == ["nats://nats-1.bidding-dev.internal:4222,nats://nats-2.bidding-dev.internal:4222,nats://nats-3.bidding-dev.internal:4222"] &&
    join(",", [for e in jsondecode(td.container_definitions)[0].environment : e.value if e.name == "NATS_STREAM_REPLICAS"]) == (k == "api-gateway" ? "3" : "")])
    error_message = "every service must get the three NATS servers by their Cloud Map names, and the gateway, which creates the stream, NATS_STREAM_REPLICAS=3"
  }

  assert {
    condition     = output.nats_url == "nats://nats-1.bidding-dev.internal:4222,nats://nats-2.bidding-dev.internal:4222,nats://nats-3.bidding-dev.internal:4222"
    error_message = "nats_url is ${output.nats_url}"
  }
}

run "data_stores_only_reachable_from_services" {
  command = apply

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.internal : r.referenced_security_group_id if r.security_group_id == aws_security_group.redis.id]) == toset([aws_security_group.gateway.id])
    error_message = "Redis must accept connections from the gateway's security group only"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.internal : r.referenced_security_group_id if r.security_group_id == aws_security_group.rds.id]) == toset([aws_security_group.gateway.id, aws_security_group.archival.id])
    error_message = "PostgreSQL must accept connections from the gateway and archival security groups only"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.internal : r.referenced_security_group_id if r.security_group_id == aws_security_group.nats.id && r.from_port == 4222]) == toset([aws_security_group.gateway.id, aws_security_group.broadcast.id, aws_security_group.archival.id])
    error_message = "NATS clients must be the three services only"
  }

  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.internal : "${r.referenced_security_group_id}:${r.from_port}" if r.security_group_id == aws_security_group.gateway.id]) == toset(["${aws_security_group.alb.id}:8080", "${aws_security_group.broadcast.id}:8080"]) && contains([for r in aws_vpc_security_group_egress_rule.internal : "${r.referenced_security_group_id}:${r.from_port}" if r.security_group_id == aws_security_group.broadcast.id], "${aws_security_group.gateway.id}:8080")
    error_message = "the gateway must accept the ALB and the broadcast service (personal channels' items) only, and the broadcast service must be let out to it"
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.public : r.security_group_id == aws_security_group.alb.id])
    error_message = "only the ALB may accept traffic from CIDR ranges"
  }

  assert {
    condition     = aws_memorydb_cluster.redis.security_group_ids == toset([aws_security_group.redis.id]) && aws_db_instance.postgres.vpc_security_group_ids == toset([aws_security_group.rds.id])
    error_message = "Redis and PostgreSQL must sit behind their own security groups"
  }

  assert {
    condition     = !aws_db_instance.postgres.publicly_accessible && aws_db_instance.postgres.storage_encrypted
    error_message = "PostgreSQL must be private and encrypted"
  }
}

run "no_secrets_in_plain_sight" {
  command = apply

  assert {
    condition     = aws_db_instance.postgres.manage_master_user_password && aws_db_instance.postgres.password == null
    error_message = "the database password must be generated into Secrets Manager, never set in configuration"
  }

  assert {
    condition = alltrue([for k, td in aws_ecs_task_definition.service :
      alltrue([for e in jsondecode(td.container_definitions)[0].environment :
    !strcontains(e.value, "rds!db") && !strcontains(e.value, "Mock0Redis0Password") && !(e.name == "POSTGRES_URL" && strcontains(split("@", e.value)[0], ":password"))])])
    error_message = "no task environment may carry a secret; secrets come through the secrets list"
  }

  assert {
    condition     = [for s in jsondecode(aws_ecs_task_definition.service["archival-worker"].container_definitions)[0].secrets : s.valueFrom if s.name == "PGPASSWORD"][0] == "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-abcdef:password::"
    error_message = "the archival worker must get PGPASSWORD from the RDS-managed secret"
  }

  assert {
    condition = alltrue([for o in [output.public_url, output.api_url, output.websocket_url, output.alb_dns_name, output.ecs_cluster_name, output.redis_endpoint, output.redis_username, output.postgres_endpoint, output.nats_url] :
    !strcontains(o, "secret") && !strcontains(o, "rds!db") && !strcontains(o, "password") && !strcontains(o, "Mock0Redis0Password")])
    error_message = "no output may carry a secret or its reference"
  }
}

run "prod_sizes_and_shards" {
  command = apply

  variables {
    environment              = "prod"
    single_nat_gateway       = false
    db_multi_az              = true
    db_deletion_protection   = true
    redis_node_type          = "db.r7g.large"
    redis_shards             = 3
    redis_replicas_per_shard = 1
    auth_jwt_secret_arn      = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bidding-jwt-abc"
    certificate_arn          = "arn:aws:acm:eu-west-1:123456789012:certificate/abcd"
  }

  assert {
    condition     = length(aws_nat_gateway.main) == 3 && aws_db_instance.postgres.multi_az
    error_message = "prod must have a NAT gateway per AZ and a Multi-AZ database"
  }

  assert {
    condition     = aws_memorydb_cluster.redis.num_shards == 3 && aws_memorydb_cluster.redis.num_replicas_per_shard == 1 && aws_memorydb_cluster.redis.snapshot_retention_limit == 7
    error_message = "prod must shard MemoryDB as asked, with a replica per shard and daily snapshots"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "REDIS_CLUSTER"] == ["true"]
    error_message = "the gateway must talk to MemoryDB as a cluster whatever the number of shards"
  }

  assert {
    condition     = [for s in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].secrets : s.valueFrom if s.name == "AUTH_JWT_SECRET"] == [var.auth_jwt_secret_arn] && !contains(jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment[*].name, "AUTH_JWT_SECRET")
    error_message = "the JWT key must come from Secrets Manager, not the environment"
  }

  assert {
    condition     = contains(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource, var.auth_jwt_secret_arn) && length(aws_secretsmanager_secret.jwt) == 0
    error_message = "the execution role must be allowed to read the JWT secret, and no key may be generated beside it"
  }
}

# The production profile refuses to plan without a certificate (HTTPS) and
# without a way to check tokens.
run "prod_refuses_to_plan_without_certificate_and_auth" {
  command = plan

  variables {
    environment = "prod"
  }

  expect_failures = [var.certificate_arn, var.auth_jwks_url]
}

run "prod_refuses_to_plan_without_auth" {
  command = plan

  variables {
    environment     = "prod"
    certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abcd"
  }

  expect_failures = [var.auth_jwks_url]
}

run "prod_refuses_to_plan_without_certificate" {
  command = plan

  variables {
    environment         = "prod"
    auth_jwt_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bidding-jwt-abc"
  }

  expect_failures = [var.certificate_arn]
}

# With both, it plans: HTTPS, tokens checked against the identity provider's
# key set, no generated key, no auto-created items.
run "prod_plans_with_certificate_and_jwks" {
  command = plan

  variables {
    environment     = "prod"
    certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abcd"
    auth_jwks_url   = "https://id.example.com/.well-known/jwks.json"
    auth_issuer     = "https://id.example.com/"
    auth_audience   = "bidding-api"
  }

  assert {
    condition     = length(aws_lb_listener.https) == 1 && length(aws_secretsmanager_secret.jwt) == 0
    error_message = "prod must have the HTTPS listener and no generated JWT key"
  }

  assert {
    condition = (
      [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "AUTH_JWKS_URL"] == [var.auth_jwks_url] &&
      [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "AUTH_ISSUER"] == [var.auth_issuer] &&
      [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "AUTH_AUDIENCE"] == [var.auth_audience] &&
      !contains(jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].secrets[*].name, "AUTH_JWT_SECRET")
    )
    error_message = "with a key set the gateway gets AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE, and no HS256 key"
  }

  assert {
    condition = alltrue([for svc in ["api-gateway", "broadcast-service"] :
      [for e in jsondecode(aws_ecs_task_definition.service[svc].container_definitions)[0].environment : "${e.name}=${e.value}" if contains(["AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE"], e.name)] == ["AUTH_AUDIENCE=${var.auth_audience}", "AUTH_ISSUER=${var.auth_issuer}", "AUTH_JWKS_URL=${var.auth_jwks_url}"] &&
    !contains(jsondecode(aws_ecs_task_definition.service[svc].container_definitions)[0].secrets[*].name, "AUTH_JWT_SECRET")])
    error_message = "with a key set the broadcast service checks personal channels' tokens against it as the gateway does"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "AUTO_CREATE_ITEMS"] == ["false"]
    error_message = "prod must never auto-create items"
  }
}

run "auth_set_one_way" {
  command = plan

  variables {
    auth_jwks_url       = "https://id.example.com/.well-known/jwks.json"
    auth_jwt_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bidding-jwt-abc"
  }

  expect_failures = [var.auth_jwks_url]
}

run "autoscaling" {
  command = apply

  assert {
    condition     = aws_appautoscaling_policy.gateway_cpu.policy_type == "TargetTrackingScaling" && aws_appautoscaling_policy.broadcast_cpu.policy_type == "TargetTrackingScaling"
    error_message = "gateway and broadcast must scale by target tracking"
  }

  assert {
    condition     = aws_appautoscaling_target.gateway.resource_id == "service/bidding-dev/api-gateway" && aws_appautoscaling_target.broadcast.resource_id == "service/bidding-dev/broadcast-service"
    error_message = "autoscaling targets must name the ECS services (got ${aws_appautoscaling_target.gateway.resource_id})"
  }
}

run "rejects_bad_input" {
  command = plan

  variables {
    alb_idle_timeout = 60
    environment      = "test"
    redis_node_type  = "cache.t4g.small"
    nats             = { storage_gib = 10 }
  }

  expect_failures = [var.alb_idle_timeout, var.environment, var.redis_node_type, var.nats]
}
