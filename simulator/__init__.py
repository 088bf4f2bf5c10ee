"""replicast simulator: the simulated-time shell around `policies.tick`.

Load profiles (synthetic and replayed traces) flow into a replica model; the same policy and
guard code the live controller runs decides every control interval. See ../DESIGN (shared) and
the module docstrings of `simulator.profiles`, `simulator.traces` and `simulator.kernel`.
"""
