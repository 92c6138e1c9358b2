"""The gateway: load balancer, pool manager, health monitor and REST API (`wspool gateway`)."""
