# ElastiCache Redis: the live auction state. Cluster mode shards items over
# node groups; every key of one item shares a hash tag, so the gateway's
# scripts run unchanged against the configuration endpoint.

resource "aws_elasticache_subnet_group" "redis" {
  name       = "${local.name}-redis"
  subnet_ids = aws_subnet.private[*].id
}

resource "aws_elasticache_parameter_group" "redis" {
  name   = "${local.name}-redis7${var.redis_cluster_mode ? "-cluster" : ""}"
  family = "redis7"

  # Auction state and the outbox must never be evicted to make room: a full
  # Redis should refuse writes (the gateway answers 503), not drop bids.
  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }

  dynamic "parameter" {
    for_each = var.redis_cluster_mode ? [1] : []
    content {
      name  = "cluster-enabled"
      value = "yes"
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = "${local.name}-redis"
  description          = "Live auction state for ${local.name}"
  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.redis.name
  subnet_group_name    = aws_elasticache_subnet_group.redis.name
  security_group_ids   = [aws_security_group.redis.id]

  cluster_mode            = var.redis_cluster_mode ? "enabled" : "disabled"
  num_node_groups         = var.redis_cluster_mode ? var.redis_shards : 1
  replicas_per_node_group = var.redis_replicas_per_shard

  # Failover needs a replica to promote; cluster mode requires it on.
  automatic_failover_enabled = var.redis_cluster_mode || var.redis_replicas_per_shard > 0
  multi_az_enabled           = var.redis_replicas_per_shard > 0

  at_rest_encryption_enabled = true
  # In-transit TLS stays off because the gateway's Redis settings have no TLS
  # option yet; the security group admits only the gateway tasks.
  transit_encryption_enabled = false

  snapshot_retention_limit = var.environment == "prod" ? 7 : 0
  apply_immediately        = var.environment != "prod"
}
