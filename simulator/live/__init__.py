"""The live tools: real time and real sockets, apart from the simulated-time modules.

`emulator` (with `slots`, `metrics` and its command line `emulator_cli`) is an inference server
on a loopback port whose latency follows a replica model; `loadgen` replays a load profile
against such an endpoint; `router` is one central FCFS queue in front of several of them that
follows the backends file the controller's `FileRegistrar` keeps (the sandbox's router, issue
20). All read the clock they are given (`base.Clock`) and touch only
loopback hosts. `python -m simulator.emulator` and the `replicast emulate` / `replicast loadgen`
commands start the first two.
"""
