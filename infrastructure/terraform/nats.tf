# NATS with JetStream as one Fargate task whose store directory lives on EFS,
# so the BIDS stream (the archiver's backlog and viewers' catch-up history)
# survives task replacement. The services find it by its Cloud Map name.

resource "aws_efs_file_system" "nats" {
  creation_token   = "${local.name}-nats"
  encrypted        = true
  performance_mode = "generalPurpose"
  throughput_mode  = "elastic"

  tags = { Name = "${local.name}-nats" }
}

resource "aws_efs_mount_target" "nats" {
  count = length(local.azs)

  file_system_id  = aws_efs_file_system.nats.id
  subnet_id       = aws_subnet.private[count.index].id
  security_groups = [aws_security_group.efs.id]
}

# The access point roots NATS in its own directory with a fixed owner, so the
# store is not the file system's root and permissions do not depend on the image.
resource "aws_efs_access_point" "nats" {
  file_system_id = aws_efs_file_system.nats.id

  posix_user {
    uid = 1000
    gid = 1000
  }

  root_directory {
    path = "/jetstream"
    creation_info {
      owner_uid   = 1000
      owner_gid   = 1000
      permissions = "0750"
    }
  }

  tags = { Name = "${local.name}-nats" }
}

resource "aws_service_discovery_private_dns_namespace" "main" {
  name        = "${local.name}.internal"
  description = "Service discovery for ${local.name}"
  vpc         = aws_vpc.main.id
}

resource "aws_service_discovery_service" "nats" {
  name = "nats"

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

# The NATS task mounts the access point with IAM authorisation: this role and
# no other may write the store.
resource "aws_iam_role" "nats_task" {
  name               = "${local.name}-nats-task"
  assume_role_policy = local.ecs_tasks_assume_role
}

resource "aws_iam_role_policy" "nats_efs" {
  name = "mount-jetstream-store"
  role = aws_iam_role.nats_task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
      Resource = aws_efs_file_system.nats.arn
      Condition = {
        StringEquals = { "elasticfilesystem:AccessPointArn" = aws_efs_access_point.nats.arn }
      }
    }]
  })
}

resource "aws_ecs_task_definition" "nats" {
  family                   = "${local.name}-nats"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.nats.cpu
  memory                   = var.nats.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.nats_task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "jetstream"

    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.nats.id
      transit_encryption = "ENABLED"

      authorization_config {
        access_point_id = aws_efs_access_point.nats.id
        iam             = "ENABLED"
      }
    }
  }

  container_definitions = jsonencode([{
    name      = "nats"
    image     = var.nats_image
    essential = true
    command   = ["nats-server", "-js", "-sd", "/data", "-m", "8222", "--name", "${local.name}-nats"]
    user      = "1000:1000"
    portMappings = [
      { containerPort = 4222, protocol = "tcp" },
      { containerPort = 8222, protocol = "tcp" },
    ]
    mountPoints = [{
      sourceVolume  = "jetstream"
      containerPath = "/data"
      readOnly      = false
    }]
    healthCheck = {
      # /healthz answers 200 once JetStream is up; the alpine image has wget.
      command     = ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8222/healthz"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 20
    }
    stopTimeout = 30
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.service["nats"].name
        awslogs-region        = var.aws_region
        awslogs-stream-prefix = "nats"
      }
    }
  }])
}

resource "aws_ecs_service" "nats" {
  name            = "nats"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.nats.arn
  desired_count   = 1
  launch_type     = "FARGATE"

  # Two servers must never share one store directory: a deployment stops the
  # old task before starting the new one (a short NATS outage, which the
  # gateway's outbox and the archiver's retries are built to ride out).
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.nats.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.nats.arn
  }

  depends_on = [aws_efs_mount_target.nats]
}
