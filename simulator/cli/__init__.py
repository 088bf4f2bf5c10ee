"""`replicast simulate`, `replicast compare` and `replicast demo`: the simulator from a shell.

In: a profile name, path or synthetic form; policy specs (inline YAML, a file, or a built-in
name sized for the replica model); a replica model preset or spec file; an SLO. Or, for
`compare --scenario`, a named benchmark scenario (simulator/scenarios.py), which fixes the load,
model, SLO and metrics and adds its clairvoyant and static plans as rows. Out: a summary table
on stdout (rich), PNG plots in `--out`, and exit 0; a bad argument is one line on stderr and
exit 2 (raised as `UsageError`, caught by `controller.dispatch.main`'s handler).

Modules: `commands` (the three commands), `args` (flags, SLO, model, bounds), `specs` (policy
names to specs), `reporting` (table, notes, files). The `replicast.commands` entry points name
`simulator.cli:cmd_*`.
"""

from __future__ import annotations

from simulator.cli.args import (
    LATENCY_FLAGS,
    UsageError,
    bounds_for,
    check_numbers,
    parse_duration_s,
    slo_from,
)
from simulator.cli.commands import (
    DEMO_POLICIES,
    SCENARIO_POLICIES,
    cmd_compare,
    cmd_demo,
    cmd_simulate,
    run_all,
)
from simulator.cli.reporting import (
    add_plan_rows,
    explanations,
    report,
    report_console,
    summary_table,
)
from simulator.cli.specs import (
    DEFAULT_SPEC_NAMES,
    SCENARIO_TARGET,
    check_policy_name,
    default_spec,
    is_policy_name,
    scenario_specs,
)
from simulator.observe import metrics_for
from simulator.profile_args import load_profile

__all__ = [
    "DEFAULT_SPEC_NAMES", "DEMO_POLICIES", "LATENCY_FLAGS", "SCENARIO_POLICIES",
    "SCENARIO_TARGET", "UsageError", "add_plan_rows", "bounds_for", "check_numbers",
    "check_policy_name", "cmd_compare", "cmd_demo", "cmd_simulate", "default_spec",
    "explanations", "is_policy_name", "load_profile", "metrics_for", "parse_duration_s",
    "report", "report_console", "run_all", "scenario_specs", "slo_from", "summary_table",
]  # fmt: skip
