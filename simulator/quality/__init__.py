"""Policy quality (issues 10, 19): the planner against baselines tuned in hindsight, per load.

In: a `Setting` (days, startup time, seed) and the targets to sweep per baseline. Out: a
`Report` per setting, one `Row` per policy (attainment, end-to-end p95, replica-hours, ratio to
the clairvoyant bound and to tuned HPA, direction changes, scale events, the planner's verdict),
as a rich table, markdown, JSON and a one-day plot. Used by `bench/policy_quality.py` and
`notebooks/policy_quality.ipynb`; the scenario itself lives in `simulator/scenarios.py`.

How a baseline is tuned, as an operator would: every target in `TARGETS` (concurrency per
replica, in service + queued) is simulated, and the cheapest target (fewest replica-hours) that
meets the SLO is kept; when none does, the one with the highest attainment, marked
"(none passes)". The clairvoyant and static rows are the scenario's plans (replica-hours,
scale events and direction changes counted from the plan); the static plan is also simulated,
so its row carries an attainment.

Modules: `jobs` (settings, one simulation per job, running them), `choice` (the cheapest
passing target, the plans' figures, the planner's bar), `report` (the rows of one setting),
`render` (table, markdown, JSON, plot). Import from here: `from simulator import quality`.
"""

from __future__ import annotations

from simulator.quality.choice import (
    BAR,
    BOUNDS_NOTE,
    MAX_DIRECTION_SHARE,
    MAX_VS_HPA,
    Choice,
    cheapest_passing,
    choose_target,
    plan_measured,
    plan_moves,
    verdict,
)
from simulator.quality.jobs import (
    BASELINES,
    CLAIRVOYANT_RUN,
    REACTIVE,
    REACTIVE_HOLDS_S,
    REACTIVE_MARGINS,
    TARGETS,
    Day,
    Job,
    Measured,
    Outcome,
    Setting,
    baseline_spec,
    jobs_for,
    measure,
    run_jobs,
    static_spec,
    with_plans,
)
from simulator.quality.render import (
    COLUMNS,
    as_dict,
    day_figure,
    markdown,
    rich_table,
    row_cells,
    table_rows,
    title,
    to_json,
)
from simulator.quality.report import Report, Row, build_report, static_measured, sweeps_of

__all__ = [
    "BAR", "BASELINES", "BOUNDS_NOTE", "CLAIRVOYANT_RUN", "COLUMNS", "MAX_DIRECTION_SHARE",
    "MAX_VS_HPA", "REACTIVE", "REACTIVE_HOLDS_S", "REACTIVE_MARGINS",
    "TARGETS", "Choice", "Day", "Job", "Measured", "Outcome", "Report", "Row", "Setting",
    "as_dict", "baseline_spec", "build_report", "cheapest_passing", "choose_target",
    "day_figure", "jobs_for", "markdown", "measure", "plan_measured", "plan_moves", "rich_table",
    "row_cells", "run_jobs", "static_measured", "static_spec", "sweeps_of", "table_rows",
    "title", "to_json", "verdict", "with_plans",
]  # fmt: skip
