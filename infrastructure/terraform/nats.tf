# NATS with JetStream as a three-node cluster on ECS Fargate: one service of
# one task per node (nats-1, nats-2, nats-3), each pinned to its own
# availability zone and found by its own Cloud Map name. The BIDS stream keeps
# three replicas (NATS_STREAM_REPLICAS=3), one per node, on each task's
# ephemeral storage: an acknowledged event is on two nodes in two zones at
# least. README.md ("NATS: storage, sync and failure modes") says why this
# storage, what a replaced task does, and what losing two at once means.

locals {
  # Node name => index of its availability zone and private subnet.
  nats_nodes = { for i in range(3) : "nats-${i + 1}" => i }

  # The private DNS namespace of Cloud Map; nats-1.<namespace> is one node.
  namespace  = "${local.name}.internal"
  nats_hosts = { for n, _ in local.nats_nodes : n => "${n}.${local.namespace}" }

  # What every service gets as NATS_URL: all three servers, so a client
  # connects while any one of them is down.
  nats_url = join(",", [for n in sort(keys(local.nats_nodes)) : "nats://${local.nats_hosts[n]}:4222"])

  # Each node's nats-server configuration, written to its store volume by
  # the container's start script (the root file system is read-only).
  nats_config = { for n, _ in local.nats_nodes : n => <<-EOT
    server_name: "${n}"
    port: 4222
    # Monitoring serves the container's health check only.
    http: "127.0.0.1:8222"

    # On SIGTERM from ECS the start script sends SIGUSR2 (lame duck mode):
    # the node hands its stream and consumer leaderships to the others, then
    # closes its clients over this period, well inside the 60 s stopTimeout.
    lame_duck_duration: "30s"
    lame_duck_grace_period: "10s"

    jetstream {
      store_dir: "/data/jetstream"
      max_file_store: ${var.nats.storage_gib - 6}G
      # The default, on purpose: an acknowledged message is in the memory
      # of two of the three nodes, in two zones. A task's disk does not
      # outlive the task, so a sync per write would add latency and protect
      # against nothing more (README.md).
      sync_interval: "2m"
    }

    cluster {
      name: "${local.name}"
      port: 6222
      # Every node lists all three; a node skips the route to itself.
      routes: [
        ${join("\n    ", [for h in sort(values(local.nats_hosts)) : "\"nats://${h}:6222\""])}
      ]
    }

    # One user per service (auth.tf); the passwords are the task's secrets.
    ${local.nats_users_conf}
  EOT
  }

  # PID 1 of the container: writes the configuration, starts nats-server,
  # turns ECS's SIGTERM into lame duck mode, and exits with the server's
  # status (a crash is restarted in place by the restart policy, keeping
  # the store).
  nats_start = join("\n", [
    "mkdir -p /data/run",
    "printf '%s\\n' \"$NATS_CONFIG\" > /data/run/nats.conf",
    "date +%s > /data/run/started",
    "nats-server --config /data/run/nats.conf &",
    "pid=$!",
    "trap 'kill -USR2 $pid' TERM",
    "wait $pid; code=$?",
    "while kill -0 $pid 2>/dev/null; do wait $pid; code=$?; done",
    "exit $code",
  ])

  # The health check gates a deployment (the next node is replaced only once
  # this one is healthy) without ever killing a node that is merely behind:
  # a new node is healthy once its streams have caught up with the others
  # (/healthz), or after 240 s if they have not (a cluster's first node has
  # no one to catch up with); from then on it only has to be alive with
  # JetStream on (?js-enabled-only), so a node that lost its quorum is not
  # replaced with an empty one.
  nats_health = join(" ", [
    "h=http://127.0.0.1:8222/healthz; r=/data/run;",
    "if [ -f $r/current ]; then wget -q -O /dev/null \"$h?js-enabled-only=true\";",
    "elif wget -q -O /dev/null $h; then touch $r/current;",
    "elif [ $(( $(date +%s) - $(cat $r/started) )) -ge 240 ] && wget -q -O /dev/null \"$h?js-enabled-only=true\"; then touch $r/current;",
    "else exit 1; fi",
  ])
}

resource "aws_service_discovery_private_dns_namespace" "main" {
  name        = local.namespace
  description = "Service discovery for ${local.name}"
  vpc         = aws_vpc.main.id
}

# nats-1.<project>-<env>.internal and so on: the address of one node, which
# follows its task when it is replaced.
resource "aws_service_discovery_service" "nats" {
  for_each = local.nats_nodes

  name = each.key

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.main.id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10 # a replaced task is found again within seconds
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }
}

resource "aws_ecs_task_definition" "nats" {
  for_each = local.nats_nodes

  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.nats.cpu
  memory                   = var.nats.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn # NATS calls no AWS API

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # The task's own storage (encrypted by Fargate), deleted with the task. Not
  # EFS: NATS does not support JetStream on NFS.
  ephemeral_storage {
    size_in_gib = var.nats.storage_gib
  }

  volume {
    name = "jetstream"
  }

  container_definitions = jsonencode([{
    name       = "nats"
    image      = var.nats_image
    essential  = true
    entryPoint = ["/bin/sh", "-c"]
    command    = [local.nats_start]
    environment = [
      { name = "NATS_CONFIG", value = local.nats_config[each.key] },
    ]
    # The users' passwords, which the configuration reads from the
    # environment ($NATS_GATEWAY_PASSWORD and so on).
    secrets = [for u in sort(keys(local.nats_users)) : {
      name      = local.nats_users[u].variable
      valueFrom = aws_secretsmanager_secret.nats[u].arn
    }]
    portMappings = [
      { containerPort = 4222, protocol = "tcp" }, # clients
      { containerPort = 6222, protocol = "tcp" }, # routes between the nodes
    ]
    mountPoints = [{
      sourceVolume  = "jetstream"
      containerPath = "/data"
      readOnly      = false
    }]
    readonlyRootFilesystem = true
    linuxParameters = {
      capabilities = { drop = ["ALL"] }
    }
    # A crashed nats-server restarts in the same task, on the same store,
    # and only catches up on what it missed.
    restartPolicy = {
      enabled              = true
      restartAttemptPeriod = 60
    }
    healthCheck = {
      command     = ["CMD-SHELL", local.nats_health]
      interval    = 15
      timeout     = 5
      retries     = 4
      startPeriod = 300 # covers the 240 s above
    }
    stopTimeout = 60
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service["nats"].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

# Three services rather than one with three tasks, because each node keeps
# its name; and three resources rather than a for_each, because Terraform
# must replace them one after another: each waits for the one before it to
# be healthy again (wait_for_steady_state), so a change to the NATS tasks
# never stops more than one node at a time.
locals {
  nats_service = {
    cluster                            = aws_ecs_cluster.main.id
    launch_type                        = "FARGATE"
    security_groups                    = [aws_security_group.nats.id]
    deployment_minimum_healthy_percent = 0   # two tasks must never share a
    deployment_maximum_percent         = 100 # name: stop the old one first
  }
}

resource "aws_ecs_service" "nats_1" {
  name                               = "nats-1"
  task_definition                    = aws_ecs_task_definition.nats["nats-1"].arn
  desired_count                      = 1
  cluster                            = local.nats_service.cluster
  launch_type                        = local.nats_service.launch_type
  deployment_minimum_healthy_percent = local.nats_service.deployment_minimum_healthy_percent
  deployment_maximum_percent         = local.nats_service.deployment_maximum_percent
  wait_for_steady_state              = true

  network_configuration {
    subnets          = [aws_subnet.private[local.nats_nodes["nats-1"]].id]
    security_groups  = local.nats_service.security_groups
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.nats["nats-1"].arn
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}

resource "aws_ecs_service" "nats_2" {
  name                               = "nats-2"
  task_definition                    = aws_ecs_task_definition.nats["nats-2"].arn
  desired_count                      = 1
  cluster                            = local.nats_service.cluster
  launch_type                        = local.nats_service.launch_type
  deployment_minimum_healthy_percent = local.nats_service.deployment_minimum_healthy_percent
  deployment_maximum_percent         = local.nats_service.deployment_maximum_percent
  wait_for_steady_state              = true

  network_configuration {
    subnets          = [aws_subnet.private[local.nats_nodes["nats-2"]].id]
    security_groups  = local.nats_service.security_groups
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.nats["nats-2"].arn
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_ecs_service.nats_1]
}

resource "aws_ecs_service" "nats_3" {
  name                               = "nats-3"
  task_definition                    = aws_ecs_task_definition.nats["nats-3"].arn
  desired_count                      = 1
  cluster                            = local.nats_service.cluster
  launch_type                        = local.nats_service.launch_type
  deployment_minimum_healthy_percent = local.nats_service.deployment_minimum_healthy_percent
  deployment_maximum_percent         = local.nats_service.deployment_maximum_percent
  wait_for_steady_state              = true

  network_configuration {
    subnets          = [aws_subnet.private[local.nats_nodes["nats-3"]].id]
    security_groups  = local.nats_service.security_groups
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.nats["nats-3"].arn
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_ecs_service.nats_2]
}
