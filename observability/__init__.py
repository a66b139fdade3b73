"""Metrics (Prometheus) and structured logs of the server processes (docs/deployment.md)."""
