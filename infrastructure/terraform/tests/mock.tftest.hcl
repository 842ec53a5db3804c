# Offline checks of what matters in this configuration, with a mocked AWS
# provider: `terraform test` (see `make infra-check`). Computed values the
# configuration indexes into get fixed mock values; the rest are generated.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
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

  mock_resource "aws_elasticache_replication_group" {
    defaults = {
      primary_endpoint_address       = "primary.redis.cache.amazonaws.com"
      configuration_endpoint_address = "config.redis.cache.amazonaws.com"
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
  target = aws_iam_role.nats_task
  values = { arn = "arn:aws:iam::123456789012:role/bidding-dev-nats-task" }
}

override_resource {
  target = aws_service_discovery_service.nats
  values = { arn = "arn:aws:servicediscovery:eu-west-1:123456789012:service/srv-nats1234" }
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

override_resource {
  target = aws_security_group.efs
  values = { id = "sg-efs0007" }
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
    gateway_env   = ["SERVER_ADDR", "REDIS_ADDR", "REDIS_PASSWORD", "REDIS_DB", "REDIS_CLUSTER", "REDIS_STRATEGY", "NATS_URL", "POSTGRES_URL", "AUTO_CREATE_ITEMS", "AUTH_JWT_SECRET", "RATE_LIMIT_PER_USER", "RATE_LIMIT_PER_IP", "CORS_ALLOWED_ORIGINS", "SOFT_CLOSE", "DEFAULT_AUCTION_DURATION", "TRUST_PROXY_HEADERS", "PREFILTER", "COALESCE", "CLOSED_ITEM_RETENTION", "LOG_LEVEL", "LOG_FORMAT"]
    broadcast_env = ["SERVER_ADDR", "NATS_URL", "ALLOWED_ORIGINS", "MAX_CONNECTIONS", "GATEWAY_URL", "SEND_QUEUE_SIZE", "SOCKET_SEND_BUFFER", "PING_INTERVAL", "PONG_TIMEOUT", "WRITE_TIMEOUT", "GAP_TIMEOUT", "SHUTDOWN_TIMEOUT", "LOG_LEVEL", "LOG_FORMAT"]
    archival_env  = ["POSTGRES_URL", "NATS_URL", "HTTP_ADDR", "BATCH_SIZE", "BATCH_WAIT", "ACK_WAIT", "WRITERS", "LOG_LEVEL", "LOG_FORMAT"]
  }

  assert {
    condition = alltrue([for n in var.gateway_env : contains(
      concat(jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment[*].name,
    jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].secrets[*].name), n)])
    error_message = "the gateway task definition lacks some of: ${join(", ", var.gateway_env)}"
  }

  assert {
    condition     = alltrue([for n in var.broadcast_env : contains(jsondecode(aws_ecs_task_definition.service["broadcast-service"].container_definitions)[0].environment[*].name, n)])
    error_message = "the broadcast task definition lacks some of: ${join(", ", var.broadcast_env)}"
  }

  assert {
    condition     = alltrue([for n in var.archival_env : contains(jsondecode(aws_ecs_task_definition.service["archival-worker"].container_definitions)[0].environment[*].name, n)])
    error_message = "the archival task definition lacks some of: ${join(", ", var.archival_env)}"
  }

  assert {
    condition = alltrue([for k, td in aws_ecs_task_definition.service :
      jsondecode(td.container_definitions)[0].logConfiguration.logDriver == "awslogs" &&
    jsondecode(td.container_definitions)[0].logConfiguration.options["awslogs-group"] == aws_cloudwatch_log_group.service[k].name])
    error_message = "every service container must log to its own CloudWatch log group"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.nats.container_definitions)[0].logConfiguration.options["awslogs-group"] == aws_cloudwatch_log_group.service["nats"].name
    error_message = "NATS must log to its CloudWatch log group"
  }

  assert {
    condition = alltrue([for k, td in aws_ecs_task_definition.service :
    jsondecode(td.container_definitions)[0].healthCheck.command[1] == "/app/healthcheck"])
    error_message = "every service container must use the image's shell-free health probe"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "NATS_URL"][0] == "nats://nats.bidding-dev.internal:4222"
    error_message = "services must find NATS by its Cloud Map name"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "REDIS_ADDR"][0] == "primary.redis.cache.amazonaws.com:6379"
    error_message = "without cluster mode the gateway must use the primary endpoint"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "AUTO_CREATE_ITEMS"][0] == "false"
    error_message = "AWS deployments must not auto-create items by default"
  }
}

run "nats_jetstream_on_efs" {
  command = apply

  assert {
    condition     = length(aws_ecs_task_definition.nats.volume) == 1 && one(aws_ecs_task_definition.nats.volume).efs_volume_configuration[0].file_system_id == aws_efs_file_system.nats.id
    error_message = "the NATS task must mount the EFS file system"
  }

  assert {
    condition     = one(aws_ecs_task_definition.nats.volume).efs_volume_configuration[0].transit_encryption == "ENABLED" && aws_efs_file_system.nats.encrypted
    error_message = "the JetStream store must be encrypted in transit and at rest"
  }

  assert {
    condition = (
      contains(jsondecode(aws_ecs_task_definition.nats.container_definitions)[0].command, "-js") &&
      jsondecode(aws_ecs_task_definition.nats.container_definitions)[0].mountPoints[0].containerPath == "/data" &&
      contains(jsondecode(aws_ecs_task_definition.nats.container_definitions)[0].command, "/data")
    )
    error_message = "NATS must run JetStream with its store on the EFS mount"
  }

  assert {
    condition     = aws_ecs_service.nats.desired_count == 1 && aws_ecs_service.nats.deployment_maximum_percent == 100
    error_message = "exactly one NATS server may use the store at a time"
  }

  assert {
    condition     = one(aws_ecs_service.nats.service_registries).registry_arn == aws_service_discovery_service.nats.arn
    error_message = "NATS must register in Cloud Map"
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
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.public : r.security_group_id == aws_security_group.alb.id])
    error_message = "only the ALB may accept traffic from CIDR ranges"
  }

  assert {
    condition     = aws_elasticache_replication_group.redis.security_group_ids == toset([aws_security_group.redis.id]) && aws_db_instance.postgres.vpc_security_group_ids == toset([aws_security_group.rds.id])
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
    !strcontains(e.value, "rds!db") && !(e.name == "POSTGRES_URL" && strcontains(split("@", e.value)[0], ":password"))])])
    error_message = "no task environment may carry a secret; secrets come through the secrets list"
  }

  assert {
    condition     = [for s in jsondecode(aws_ecs_task_definition.service["archival-worker"].container_definitions)[0].secrets : s.valueFrom if s.name == "PGPASSWORD"][0] == "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1234-abcdef:password::"
    error_message = "the archival worker must get PGPASSWORD from the RDS-managed secret"
  }

  assert {
    condition = alltrue([for o in [output.public_url, output.api_url, output.websocket_url, output.alb_dns_name, output.ecs_cluster_name, output.redis_endpoint, output.postgres_endpoint, output.nats_url] :
    !strcontains(o, "secret") && !strcontains(o, "rds!db") && !strcontains(o, "password")])
    error_message = "no output may carry a secret or its reference"
  }
}

run "prod_sizes_and_cluster_mode" {
  command = apply

  variables {
    environment              = "prod"
    single_nat_gateway       = false
    db_multi_az              = true
    db_deletion_protection   = true
    redis_cluster_mode       = true
    redis_shards             = 3
    redis_replicas_per_shard = 1
    auth_jwt_secret_arn      = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bidding-jwt-abc"
  }

  assert {
    condition     = length(aws_nat_gateway.main) == 2 && aws_db_instance.postgres.multi_az
    error_message = "prod must have a NAT gateway per AZ and a Multi-AZ database"
  }

  assert {
    condition     = aws_elasticache_replication_group.redis.num_node_groups == 3 && aws_elasticache_replication_group.redis.automatic_failover_enabled && aws_elasticache_replication_group.redis.cluster_mode == "enabled" && aws_elasticache_parameter_group.redis.family == "redis7"
    error_message = "cluster mode must shard Redis with failover"
  }

  assert {
    condition     = [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "REDIS_ADDR"][0] == "config.redis.cache.amazonaws.com:6379" && [for e in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment : e.value if e.name == "REDIS_CLUSTER"][0] == "true"
    error_message = "cluster mode must hand the gateway the configuration endpoint and REDIS_CLUSTER=true"
  }

  assert {
    condition     = [for s in jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].secrets : s.valueFrom if s.name == "AUTH_JWT_SECRET"] == [var.auth_jwt_secret_arn] && !contains(jsondecode(aws_ecs_task_definition.service["api-gateway"].container_definitions)[0].environment[*].name, "AUTH_JWT_SECRET")
    error_message = "the JWT key must come from Secrets Manager, not the environment"
  }

  assert {
    condition     = contains(jsondecode(aws_iam_role_policy.execution_secrets.policy).Statement[0].Resource, var.auth_jwt_secret_arn)
    error_message = "the execution role must be allowed to read the JWT secret"
  }
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
  }

  expect_failures = [var.alb_idle_timeout, var.environment]
}
