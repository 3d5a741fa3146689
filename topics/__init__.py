"""Kafka contracts: topic names and configs, client limits, the frame envelope, admin."""
