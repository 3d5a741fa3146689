"""How real components start: the local Kafka broker (and, as they land, Prometheus and tiers)."""
