# Least privilege between components: every security group starts closed and
# each allowed connection below is one ingress rule on the receiver plus the
# matching egress rule on the sender. Only the ALB accepts traffic from
# outside, and only the clients of Redis, PostgreSQL and NATS that need them
# can reach them.

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Public load balancer"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-alb" }
}

resource "aws_security_group" "gateway" {
  name        = "${local.name}-gateway"
  description = "API gateway tasks"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-gateway" }
}

resource "aws_security_group" "broadcast" {
  name        = "${local.name}-broadcast"
  description = "Broadcast service tasks"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-broadcast" }
}

resource "aws_security_group" "archival" {
  name        = "${local.name}-archival"
  description = "Archival worker tasks"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-archival" }
}

resource "aws_security_group" "nats" {
  name        = "${local.name}-nats"
  description = "NATS JetStream nodes"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-nats" }
}

resource "aws_security_group" "redis" {
  name        = "${local.name}-redis"
  description = "MemoryDB for Redis"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-redis" }
}

resource "aws_security_group" "rds" {
  name        = "${local.name}-rds"
  description = "RDS PostgreSQL"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-rds" }
}

locals {
  sg = {
    alb       = aws_security_group.alb.id
    gateway   = aws_security_group.gateway.id
    broadcast = aws_security_group.broadcast.id
    archival  = aws_security_group.archival.id
    nats      = aws_security_group.nats.id
    redis     = aws_security_group.redis.id
    rds       = aws_security_group.rds.id
  }

  # Every connection allowed inside the VPC. The gateway alone touches Redis;
  # PostgreSQL serves the gateway's history reads and the archival writes;
  # the NATS nodes replicate to each other over their cluster routes.
  internal_paths = {
    alb_to_gateway    = { from = "alb", to = "gateway", port = 8080 }
    alb_to_broadcast  = { from = "alb", to = "broadcast", port = 8081 }
    gateway_to_redis  = { from = "gateway", to = "redis", port = 6379 }
    gateway_to_nats   = { from = "gateway", to = "nats", port = 4222 }
    gateway_to_rds    = { from = "gateway", to = "rds", port = 5432 }
    broadcast_to_nats = { from = "broadcast", to = "nats", port = 4222 }
    # A personal channel's items, read from the gateway (GATEWAY_INTERNAL_URL).
    broadcast_to_gateway = { from = "broadcast", to = "gateway", port = 8080 }
    archival_to_nats     = { from = "archival", to = "nats", port = 4222 }
    archival_to_rds      = { from = "archival", to = "rds", port = 5432 }
    nats_routes          = { from = "nats", to = "nats", port = 6222 }
  }

  # Tasks reach ECR, CloudWatch Logs and Secrets Manager over HTTPS through NAT.
  https_out = toset(["gateway", "broadcast", "archival", "nats"])

  public_ports = local.https ? [80, 443] : [80]
  public_ingress = {
    for pair in setproduct(var.allowed_ingress_cidrs, local.public_ports) :
    "${pair[0]}_${pair[1]}" => { cidr = pair[0], port = pair[1] }
  }
}

resource "aws_vpc_security_group_ingress_rule" "internal" {
  for_each = local.internal_paths

  security_group_id            = local.sg[each.value.to]
  referenced_security_group_id = local.sg[each.value.from]
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = "${each.value.from} to ${each.value.to}"
}

resource "aws_vpc_security_group_egress_rule" "internal" {
  for_each = local.internal_paths

  security_group_id            = local.sg[each.value.from]
  referenced_security_group_id = local.sg[each.value.to]
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  description                  = "${each.value.from} to ${each.value.to}"
}

resource "aws_vpc_security_group_ingress_rule" "public" {
  for_each = local.public_ingress

  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  description       = "clients to the load balancer"
}

resource "aws_vpc_security_group_egress_rule" "https_out" {
  for_each = local.https_out

  security_group_id = local.sg[each.value]
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  description       = "AWS APIs (ECR, CloudWatch Logs, Secrets Manager) through NAT"
}
