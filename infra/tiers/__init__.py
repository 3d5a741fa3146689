"""Emulated edge, fog and cloud hosts on one machine: namespaces, shaped links, CPU quotas."""
