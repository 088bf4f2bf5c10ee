"""Actuators: one protocol (`current()`, `scale(n)`) and its Kubernetes, ACI and local kinds."""
