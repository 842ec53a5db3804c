# The bidding platform on AWS: three Go services and a three-node NATS
# JetStream cluster on ECS Fargate behind one ALB, MemoryDB for Redis for live
# state, RDS PostgreSQL for history. See README.md in this folder for the
# deploy steps, the durability choices and costs.

terraform {
  # 1.9: variable validations that refer to other variables; terraform test
  # with mock_provider needs 1.7.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x: manage_master_user_password on RDS and the
      # aws_vpc_security_group_*_rule resources.
      version = ">= 5.40.0, < 6.0.0"
    }
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  name = "${var.project}-${var.environment}"

  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  # Three AZs, one per NATS node, so losing a zone loses one replica of the
  # stream, not the quorum. The ALB, RDS Multi-AZ and MemoryDB use them too.
  azs = slice(data.aws_availability_zones.available.names, 0, min(3, length(data.aws_availability_zones.available.names)))

  https = var.certificate_arn != ""

  # What browsers use: the page, the API and the WebSocket share one origin.
  public_host = var.domain_name != "" ? var.domain_name : aws_lb.main.dns_name
  public_url  = "${local.https ? "https" : "http"}://${local.public_host}"
  ws_url      = "${local.https ? "wss" : "ws"}://${local.public_host}/ws"

  # MemoryDB's cluster endpoint: the gateway's cluster client discovers the
  # shards from it.
  redis_addr = "${aws_memorydb_cluster.redis.cluster_endpoint[0].address}:${aws_memorydb_cluster.redis.cluster_endpoint[0].port}"

  # No password in the URL: the task gets PGPASSWORD from Secrets Manager and
  # pgx reads it when the URL has none.
  postgres_url = "postgres://${aws_db_instance.postgres.username}@${aws_db_instance.postgres.address}:${aws_db_instance.postgres.port}/${aws_db_instance.postgres.db_name}?sslmode=require"

  # The key of the RDS-managed secret's JSON that holds the password.
  db_password_from = "${aws_db_instance.postgres.master_user_secret[0].secret_arn}:password::"
}
