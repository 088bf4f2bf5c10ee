"""replicast controller: the asyncio shell around `policies.tick`.

Prometheus -> Observation -> policy + guards -> actuator (Kubernetes scale subresource, Azure
Container Instances, local processes). It imports `policies`, never `simulator`.
"""
