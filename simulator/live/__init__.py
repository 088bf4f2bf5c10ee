"""The live tools: real time and real sockets, apart from the simulated-time modules.

`emulator` (with `slots`, `metrics` and its command line `emulator_cli`) is an inference server
on a loopback port whose latency follows a replica model; `loadgen` replays a load profile
against such an endpoint. Both read the clock they are given (`base.Clock`) and touch only
loopback hosts. `python -m simulator.emulator` and the `replicast emulate` / `replicast loadgen`
commands start them.
"""
