# Addresses and names only. No output carries a password or secret value: the
# database password lives in the RDS-managed Secrets Manager secret, the
# gateway's Redis password in the one memorydb.tf creates.

output "public_url" {
  description = "Live auction page (open /items/<id>) and API base."
  value       = local.public_url
}

output "api_url" {
  description = "Base URL of the REST API."
  value       = "${local.public_url}/api/v1"
}

output "websocket_url" {
  description = "WebSocket endpoint; add ?item_id=<id>."
  value       = local.ws_url
}

output "alb_dns_name" {
  description = "DNS name of the load balancer (point domain_name's record here)."
  value       = aws_lb.main.dns_name
}

output "ecr_repository_urls" {
  description = "Where to push each service image."
  value       = { for k, r in aws_ecr_repository.service : k => r.repository_url }
}

output "ecs_cluster_name" {
  description = "ECS cluster running the services."
  value       = aws_ecs_cluster.main.name
}

output "redis_endpoint" {
  description = "MemoryDB cluster endpoint the gateway uses (private, TLS only)."
  value       = local.redis_addr
}

output "redis_username" {
  description = "MemoryDB user of the gateway (its password is in Secrets Manager)."
  value       = aws_memorydb_user.gateway.user_name
}

output "postgres_endpoint" {
  description = "PostgreSQL host:port (private); the password is in the RDS-managed secret."
  value       = "${aws_db_instance.postgres.address}:${aws_db_instance.postgres.port}"
}

output "nats_url" {
  description = "The three NATS servers inside the VPC (Cloud Map names), as the services' NATS_URL."
  value       = local.nats_url
}
