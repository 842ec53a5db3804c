# ---------------------------------------------------------------- general

variable "project" {
  description = "Prefix of every resource name."
  type        = string
  default     = "bidding"

  validation {
    # "<project>-staging-broadcast" must fit the 32 characters of a target group name.
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.project))
    error_message = "project must be 2-12 lower-case letters, digits or dashes, starting with a letter (it prefixes names with length limits)."
  }
}

variable "environment" {
  description = "Deployment environment: dev, staging or prod."
  type        = string
  default     = "dev"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like eu-west-1."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- network

variable "vpc_cidr" {
  description = "CIDR block of the VPC; split into three public and three private subnets."
  type        = string
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR of /20 or larger."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all three AZs (cheaper, dev) instead of one per AZ (survives an AZ outage, prod)."
  type        = bool
  default     = true
}

variable "allowed_ingress_cidrs" {
  description = "CIDR blocks allowed to reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.allowed_ingress_cidrs) > 0 && alltrue([for c in var.allowed_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_ingress_cidrs must hold at least one valid IPv4 CIDR."
  }
}

# ---------------------------------------------------------------- load balancer

variable "certificate_arn" {
  description = "ACM certificate ARN for the HTTPS listener. Empty: HTTP only (dev). Set: HTTPS on 443 and HTTP redirects to it."
  type        = string
  default     = ""

  # The production profile: bids, tokens and viewers' sockets only over
  # TLS, so an HTTPS listener, which needs a certificate.
  validation {
    condition     = var.environment != "prod" || var.certificate_arn != ""
    error_message = "environment = \"prod\" needs certificate_arn (an ACM certificate for the HTTPS listener): tokens and bids must not cross the internet in clear."
  }

  validation {
    condition     = var.certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be empty or an ACM certificate ARN."
  }
}

variable "domain_name" {
  description = "Public host name pointing at the ALB (you create the DNS record). Empty: the ALB's own DNS name. Sets the origins the services accept."
  type        = string
  default     = ""

  validation {
    condition     = var.domain_name == "" || can(regex("^[a-z0-9.-]+\\.[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be empty or a lower-case host name such as auctions.example.com."
  }
}

variable "alb_idle_timeout" {
  description = "Seconds the ALB keeps an idle connection open. WebSocket viewers may sit silent between bids, so this is long; the service's ping/pong keeps live sockets busy well within it."
  type        = number
  default     = 3600

  validation {
    condition     = var.alb_idle_timeout >= 300 && var.alb_idle_timeout <= 4000
    error_message = "alb_idle_timeout must be between 300 (WebSockets need minutes) and 4000 (the ALB maximum) seconds."
  }
}

# ---------------------------------------------------------------- containers

variable "image_tag" {
  description = "Tag of the service images in ECR (pushed as described in README.md)."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid Docker tag."
  }
}

variable "nats_image" {
  description = "NATS server image; the alpine variant has wget for the health check."
  type        = string
  default     = "nats:2.10-alpine"
}

variable "gateway" {
  description = "API gateway tasks: Fargate CPU units and memory (MiB), and the autoscaling range."
  type = object({
    cpu           = optional(number, 512)
    memory        = optional(number, 1024)
    desired_count = optional(number, 2)
    min_count     = optional(number, 2)
    max_count     = optional(number, 10)
  })
  default = {}

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.gateway.cpu) && var.gateway.min_count >= 1 && var.gateway.min_count <= var.gateway.desired_count && var.gateway.desired_count <= var.gateway.max_count
    error_message = "gateway.cpu must be a Fargate size (256-4096) and 1 <= min_count <= desired_count <= max_count."
  }
}

variable "broadcast" {
  description = "Broadcast service tasks: Fargate CPU units and memory (MiB), and the autoscaling range."
  type = object({
    cpu           = optional(number, 512)
    memory        = optional(number, 1024)
    desired_count = optional(number, 2)
    min_count     = optional(number, 2)
    max_count     = optional(number, 10)
  })
  default = {}

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.broadcast.cpu) && var.broadcast.min_count >= 1 && var.broadcast.min_count <= var.broadcast.desired_count && var.broadcast.desired_count <= var.broadcast.max_count
    error_message = "broadcast.cpu must be a Fargate size (256-4096) and 1 <= min_count <= desired_count <= max_count."
  }
}

variable "archival" {
  description = "Archival worker tasks: Fargate CPU units, memory (MiB) and count (they share one durable consumer)."
  type = object({
    cpu           = optional(number, 256)
    memory        = optional(number, 512)
    desired_count = optional(number, 1)
  })
  default = {}

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.archival.cpu) && var.archival.desired_count >= 1
    error_message = "archival.cpu must be a Fargate size (256-4096) and desired_count at least 1."
  }
}

variable "nats" {
  description = "Each of the three NATS nodes: Fargate CPU units, memory (MiB), and the task's ephemeral storage in GiB that holds its JetStream store (JetStream may use all but 6 GiB of it; the BIDS stream holds up to 16 million events, about 6 GiB)."
  type = object({
    cpu         = optional(number, 512)
    memory      = optional(number, 1024)
    storage_gib = optional(number, 30)
  })
  default = {}

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.nats.cpu) && var.nats.memory >= 512 && var.nats.storage_gib >= 21 && var.nats.storage_gib <= 200
    error_message = "nats.cpu must be a Fargate size (256-4096), memory at least 512, and storage_gib between 21 and 200 (Fargate's ephemeral storage range)."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU the gateway and broadcast autoscaling keep their services at."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 20 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 20 and 90."
  }
}

variable "gateway_requests_per_target" {
  description = "ALB requests per gateway task per minute the autoscaling aims for."
  type        = number
  default     = 30000

  validation {
    condition     = var.gateway_requests_per_target >= 100
    error_message = "gateway_requests_per_target must be at least 100."
  }
}

variable "log_retention_days" {
  description = "CloudWatch log retention for every service."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

# ---------------------------------------------------------------- service settings

variable "log_level" {
  description = "LOG_LEVEL of every service."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "redis_strategy" {
  description = "REDIS_STRATEGY of the gateway: lua (one script per bid) or optimistic (WATCH/MULTI/EXEC)."
  type        = string
  default     = "lua"

  validation {
    condition     = contains(["lua", "optimistic"], var.redis_strategy)
    error_message = "redis_strategy must be lua or optimistic."
  }
}

variable "auth_jwt_secret_arn" {
  description = "ARN of a Secrets Manager secret whose value is the HS256 key for AUTH_JWT_SECRET (at least 32 bytes). Empty with auth_jwks_url empty: dev and staging get a generated key; prod refuses to plan."
  type        = string
  default     = ""

  validation {
    condition     = var.auth_jwt_secret_arn == "" || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.auth_jwt_secret_arn))
    error_message = "auth_jwt_secret_arn must be empty or a Secrets Manager secret ARN."
  }
}

variable "auth_jwks_url" {
  description = "AUTH_JWKS_URL: the identity provider's JSON Web Key Set (https), whose keys sign the bearer tokens (RS256, ES256, EdDSA). Use it or auth_jwt_secret_arn; prod needs one of them."
  type        = string
  default     = ""

  validation {
    condition     = var.auth_jwks_url == "" || can(regex("^https://[^/\\s]+", var.auth_jwks_url))
    error_message = "auth_jwks_url must be empty or an https URL."
  }

  validation {
    condition     = var.auth_jwks_url == "" || var.auth_jwt_secret_arn == ""
    error_message = "Set auth_jwks_url or auth_jwt_secret_arn, not both: tokens are checked one way."
  }

  # The production profile: tokens from a real identity provider or a key
  # the operator holds, never a generated one nobody signs with.
  validation {
    condition     = var.environment != "prod" || var.auth_jwks_url != "" || var.auth_jwt_secret_arn != ""
    error_message = "environment = \"prod\" needs an authentication setting: auth_jwks_url (the identity provider's key set) or auth_jwt_secret_arn (an HS256 key in Secrets Manager)."
  }
}

variable "auth_issuer" {
  description = "AUTH_ISSUER: the iss every token must carry (empty: the gateway's default)."
  type        = string
  default     = ""
}

variable "auth_audience" {
  description = "AUTH_AUDIENCE: the aud every token must carry (empty: the gateway's default)."
  type        = string
  default     = ""
}

variable "rate_limit_per_user" {
  description = "RATE_LIMIT_PER_USER: bids per second per user (0 disables)."
  type        = number
  default     = 20

  validation {
    condition     = var.rate_limit_per_user >= 0
    error_message = "rate_limit_per_user must not be negative."
  }
}

variable "rate_limit_per_ip" {
  description = "RATE_LIMIT_PER_IP: requests per second per client IP (0 disables)."
  type        = number
  default     = 200

  validation {
    condition     = var.rate_limit_per_ip >= 0
    error_message = "rate_limit_per_ip must not be negative."
  }
}

variable "soft_close" {
  description = "SOFT_CLOSE: a bid this close to an auction's end extends it by this much (Go duration, 0 disables)."
  type        = string
  default     = "30s"

  validation {
    condition     = can(regex("^([0-9]+(ns|us|ms|s|m|h))+$|^0$", var.soft_close))
    error_message = "soft_close must be a Go duration such as 30s, or 0."
  }
}

variable "default_auction_duration" {
  description = "DEFAULT_AUCTION_DURATION: length of auctions created without an end time (Go duration)."
  type        = string
  default     = "24h"

  validation {
    condition     = can(regex("^([0-9]+(ns|us|ms|s|m|h))+$", var.default_auction_duration))
    error_message = "default_auction_duration must be a Go duration such as 24h."
  }
}

variable "max_connections" {
  description = "MAX_CONNECTIONS: WebSocket viewers per broadcast task."
  type        = number
  default     = 50000

  validation {
    condition     = var.max_connections >= 1
    error_message = "max_connections must be at least 1."
  }
}

variable "ending_soon_lead" {
  description = "ENDING_SOON_LEAD: how long before an item's end its leader gets auction_ending_soon on the personal channel (Go duration, 0 disables)."
  type        = string
  default     = "5m"

  validation {
    condition     = can(regex("^([0-9]+(ns|us|ms|s|m|h))+$|^0$", var.ending_soon_lead))
    error_message = "ending_soon_lead must be a Go duration such as 5m, or 0."
  }
}

variable "max_conns_per_user" {
  description = "WS_MAX_CONNS_PER_USER: personal channels (tabs) one user may hold on a broadcast task."
  type        = number
  default     = 10

  validation {
    condition     = var.max_conns_per_user >= 1
    error_message = "max_conns_per_user must be at least 1."
  }
}

variable "batch_size" {
  description = "BATCH_SIZE: most messages the archival worker writes per PostgreSQL transaction."
  type        = number
  default     = 4000

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "batch_wait" {
  description = "BATCH_WAIT: longest the archival worker waits to fill a batch (Go duration)."
  type        = string
  default     = "100ms"

  validation {
    condition     = can(regex("^([0-9]+(ns|us|ms|s|m|h))+$", var.batch_wait))
    error_message = "batch_wait must be a Go duration such as 100ms."
  }
}

# ---------------------------------------------------------------- Redis

variable "redis_node_type" {
  description = "MemoryDB node type."
  type        = string
  default     = "db.t4g.small"

  validation {
    condition     = startswith(var.redis_node_type, "db.")
    error_message = "redis_node_type must be a MemoryDB node type such as db.t4g.small or db.r7g.large."
  }
}

variable "redis_engine_version" {
  description = "MemoryDB Redis engine version (7.x, such as 7.1; the scripts need Redis 7)."
  type        = string
  default     = "7.1"

  validation {
    condition     = startswith(var.redis_engine_version, "7.")
    error_message = "redis_engine_version must be a 7.x version."
  }
}

variable "redis_shards" {
  description = "Number of MemoryDB shards. MemoryDB is always a Redis Cluster (the gateway gets REDIS_CLUSTER=true and the cluster endpoint); one shard is the size of a single Redis, more spread the items, whose keys share a hash tag."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_shards >= 1 && var.redis_shards <= 500
    error_message = "redis_shards must be between 1 and 500."
  }
}

variable "redis_replicas_per_shard" {
  description = "Replicas per MemoryDB shard. Durability does not depend on them (every write is in MemoryDB's Multi-AZ transaction log before it is acknowledged); a replica turns a failed primary into a failover of seconds instead of a node rebuilt from the log (minutes of 503s)."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_replicas_per_shard >= 0 && var.redis_replicas_per_shard <= 5
    error_message = "redis_replicas_per_shard must be between 0 and 5."
  }
}

# ---------------------------------------------------------------- PostgreSQL

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.micro"

  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class must be an RDS class such as db.t4g.micro."
  }
}

variable "db_engine_version" {
  description = "PostgreSQL major (or major.minor) version."
  type        = string
  default     = "15"

  validation {
    condition     = can(regex("^1[5-9](\\.[0-9]+)?$", var.db_engine_version))
    error_message = "db_engine_version must be PostgreSQL 15 or newer, such as 15 or 15.8."
  }
}

variable "db_allocated_storage" {
  description = "Initial RDS storage in GiB; storage autoscaling grows it up to db_max_allocated_storage."
  type        = number
  default     = 20

  validation {
    condition     = var.db_allocated_storage >= 20
    error_message = "db_allocated_storage must be at least 20 GiB."
  }
}

variable "db_max_allocated_storage" {
  description = "Upper bound of RDS storage autoscaling in GiB."
  type        = number
  default     = 100

  validation {
    condition     = var.db_max_allocated_storage >= var.db_allocated_storage
    error_message = "db_max_allocated_storage must be at least db_allocated_storage."
  }
}

variable "db_multi_az" {
  description = "Run a synchronous standby in the second AZ (prod)."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Days of automated RDS backups."
  type        = number
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (prod). terraform destroy fails while it is on."
  type        = bool
  default     = false
}
