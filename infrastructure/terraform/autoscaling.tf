# Target tracking for the two services that take outside traffic. The gateway
# follows CPU and request rate; the broadcast service follows CPU and memory
# (sockets cost memory while idle, and WebSocket frames are not ALB requests).

resource "aws_appautoscaling_target" "gateway" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.gateway.name}"
  min_capacity       = var.gateway.min_count
  max_capacity       = var.gateway.max_count
}

resource "aws_appautoscaling_policy" "gateway_cpu" {
  name               = "${local.name}-gateway-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension
  resource_id        = aws_appautoscaling_target.gateway.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 120
    scale_out_cooldown = 30

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "gateway_requests" {
  name               = "${local.name}-gateway-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension
  resource_id        = aws_appautoscaling_target.gateway.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.gateway_requests_per_target
    scale_in_cooldown  = 120
    scale_out_cooldown = 30

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.main.arn_suffix}/${aws_lb_target_group.gateway.arn_suffix}"
    }
  }
}

resource "aws_appautoscaling_target" "broadcast" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.broadcast.name}"
  min_capacity       = var.broadcast.min_count
  max_capacity       = var.broadcast.max_count
}

resource "aws_appautoscaling_policy" "broadcast_cpu" {
  name               = "${local.name}-broadcast-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.broadcast.service_namespace
  scalable_dimension = aws_appautoscaling_target.broadcast.scalable_dimension
  resource_id        = aws_appautoscaling_target.broadcast.resource_id

  target_tracking_scaling_policy_configuration {
    target_value = var.cpu_target_percent
    # Scaling in cuts the sockets of the removed task, so do it slowly.
    scale_in_cooldown  = 600
    scale_out_cooldown = 30

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "broadcast_memory" {
  name               = "${local.name}-broadcast-memory"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.broadcast.service_namespace
  scalable_dimension = aws_appautoscaling_target.broadcast.scalable_dimension
  resource_id        = aws_appautoscaling_target.broadcast.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = 70
    scale_in_cooldown  = 600
    scale_out_cooldown = 30

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageMemoryUtilization"
    }
  }
}
