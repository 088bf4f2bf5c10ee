"""The plan as files: plan.html (self-contained: plots embedded, no network), plan.md (its twin,
the plots beside it as PNGs), plan.json (every number), controller.yaml (the recommended target
as a `replicast/v1` config `replicast validate` accepts), and a one-screen terminal summary."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from simulator.plan.build import Plan, Simulated, mix_attainment
from simulator.plan.figures import FIGURES
from simulator.plan.mix import PAYS

ASSUMPTIONS = (
    "Prices are the catalog's examples (its as_of date and region): verify against your agreement.",
    "A replica of tensor parallel t on a VM of g GPUs: floor(g / t) replicas per VM; cost and "
    "provisioning follow the VM (a VM is paid while any of its replicas is in use).",
    "Cold starts: every scale-up provisions a new node and loads the model (the catalog's times).",
    "Service times: the performance table's prefill and decode fits, each request's own tokens, "
    "a full batch of slots_per_replica decoding together.",
    "The queueing screen: Erlang-C with the Allen-Cunneen correction per 10-minute window; the "
    "finalists are simulated request by request with the policy in the loop (a profile longer "
    "than 9 hours: on its busiest 6 hours, then the cheapest that meet the SLO on the whole "
    "profile, in turn).",
    "Each run starts as a running service would: with the most replicas its policy asks for "
    "over the first 20 minutes (at least the screen's count), not from cold.",
    "Other seeds (other arrival and cold-start draws) are replayed on the whole profile up to "
    "36 hours long, else on its busiest day.",
    "Reserved: the floor is the VM count busy at least the break-even share of hours "
    "(reserved / on-demand price); the rest bursts on demand. A month is 730 hours.",
)


def _target(plan: Plan, cand: Any, spec: dict[str, Any], reserved_vms: int) -> dict[str, Any]:
    name = f"{plan.input.model_name}-{cand.sku.name.lower().replace('_', '-')}"
    name = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in name)[:63].strip("-")
    spec = dict(spec)
    spec.setdefault("min_replicas", max(0, reserved_vms * cand.replicas_per_vm))
    spec["min_replicas"] = min(int(spec["min_replicas"]), int(spec["max_replicas"]))
    return {
        "name": name,
        "scale_target": {"kind": "Deployment", "namespace": "inference", "name": name},
        "signals": {"preset": "vllm"},
        "policy": spec,
    }


def _config(targets: list[dict[str, Any]], head: str) -> str:
    config = {
        "apiVersion": "replicast/v1",
        "prometheus": {"url": "http://prometheus.monitoring:9090"},
        "targets": targets,
    }
    return head + yaml.safe_dump(config, sort_keys=False)


def _pool(cand: Any, spec: dict[str, Any], reserved: int) -> str:
    nodes = math.ceil(int(spec["max_replicas"]) / cand.replicas_per_vm)
    return f"# AKS node pool {cand.sku.name}: min {reserved} (reserved), max {nodes} nodes\n"


def controller_config(plan: Plan) -> str:
    """The recommended target as a controller config (YAML text)."""
    c = plan.chosen
    if c is None:
        return ""
    head = (
        f"# replicast plan: {c.label}, {plan.input.slo.label}\n"
        + _pool(c.candidate, c.spec, c.best.reserved)
        + "# edit the namespace, names and Prometheus URL to yours.\n"
    )
    return _config([_target(plan, c.candidate, c.spec, c.best.reserved)], head)


def mix_config(plan: Plan) -> str:
    """A paying mix as one target per SKU's Deployment (YAML text; "" without one)."""
    if not plan.mix_runs:
        return ""
    weights = ", ".join(
        f"{r.part.screened.candidate.sku.name} {100 * r.part.share:.0f} %" for r in plan.mix_runs
    )
    head = (
        f"# replicast plan, the SKU mix: {plan.input.slo.label}\n"
        + "".join(_pool(r.part.screened.candidate, r.spec, r.part.reserved) for r in plan.mix_runs)
        + f"# route the traffic by these weights (e.g. HTTPRoute backendRefs): {weights}\n"
        + "# edit the namespace, names and Prometheus URL to yours.\n"
    )
    targets = [
        _target(plan, r.part.screened.candidate, r.spec, r.part.reserved) for r in plan.mix_runs
    ]
    return _config(targets, head)


def _num(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def as_json(plan: Plan) -> dict[str, Any]:
    def sim(s: Simulated) -> dict[str, Any]:
        return {
            "label": s.label,
            "sku": s.candidate.sku.name,
            "tensor_parallel": s.candidate.tensor_parallel,
            "spec": s.spec,
            "slo_attainment": s.summary["slo_attainment"],
            "slo_met": s.meets,
            "latency_p95_s": s.summary["latency_p95_s"],
            "latency_p99_s": s.summary["latency_p99_s"],
            "wait_p99_s": s.summary["wait_p99_s"],
            "replica_hours": s.summary["replica_hours"],
            "gpu_hours": s.gpu_hours,
            "screen_usd_per_month": s.screen_usd_month,
            "splits": [vars(x) for x in s.splits],
        }

    c = plan.chosen
    return {
        "profile": plan.input.profile_name,
        "duration_h": plan.input.profile.duration_s / 3600.0,
        "model": plan.input.model_name,
        "slo": plan.input.slo.label,
        "notes": list(plan.input.notes),
        "assumptions": list(ASSUMPTIONS),
        "screen": [
            {
                "sku": s.candidate.sku.name,
                "tensor_parallel": s.candidate.tensor_parallel,
                "replicas_per_vm": s.candidate.replicas_per_vm,
                "mean_service_s": s.stats.mean_s,
                "peak_replicas_needed": int(s.needed.max())
                if s.needed.size and s.feasible
                else None,
                "lower_bound_usd_per_month": s.lower_usd_month if s.feasible else None,
                "feasible": s.feasible,
                "why": s.why,
                "simulated": s.simulated,
            }
            for s in plan.screened
        ],
        "simulated": [sim(s) for s in plan.simulated],
        "recommended": None
        if c is None
        else {**sim(c), "best_split": vars(c.best), "max_replicas": plan.max_replicas},
        "ranked_on": plan.rank_window,
        "checks": plan.checks,
        "tried": plan.tried,
        "growth": [vars(g) for g in plan.growth],
        "mix": _mix_json(plan),
        "wall_s": plan.wall_s,
    }


def _mix_json(plan: Plan) -> dict[str, Any] | None:
    m = plan.mix
    if m is None:
        return None
    return {
        "usd_per_month": m.usd_per_month,
        "single_sku_usd_per_month": m.single_usd_per_month,
        "saving_on_best_single": m.saving,
        "pays": m.pays,
        "parts": [
            {
                "sku": p.screened.candidate.sku.name,
                "tensor_parallel": p.screened.candidate.tensor_parallel,
                "reserved_vms": p.reserved,
                "reserved_term": p.reserved_term,
                "burst_peak_vms": p.burst_peak,
                "share_of_load": p.share,
            }
            for p in m.parts
        ],
        "simulated": [
            {
                "label": r.label,
                "spec": r.spec,
                "share_of_load": r.part.share,
                "slo_attainment": r.summary["slo_attainment"],
                "replica_hours": r.summary["replica_hours"],
                "usd_per_month": r.usd_per_month,
            }
            for r in plan.mix_runs
        ],
        "slo_attainment": mix_attainment(plan.mix_runs) if plan.mix_runs else None,
        "usd_per_month_simulated": sum(r.usd_per_month for r in plan.mix_runs)
        if plan.mix_runs
        else None,
    }


def _mix_section(plan: Plan) -> tuple[str, str] | None:
    m = plan.mix
    if m is None:
        return None
    label, single = m.best_single
    saved = f"a saving of {100 * m.saving:.1f} %" if m.saving > 0 else "no saving"
    verdict = (
        f"The cheapest mix by the program costs USD {m.usd_per_month:,.0f} a month against USD "
        f"{single:,.0f} for the best single SKU by the same program ({label}): "
        + (
            f"it saves {100 * m.saving:.1f} %, more than {100 * PAYS:g} %, so it is simulated "
            "below."
            if m.pays
            else f"{saved}, not more than {100 * PAYS:g} %: one SKU it is."
        )
    )
    how = (
        "The program (simulator/plan/mix.py): minimize the month's reserved VMs at each SKU's "
        "cheapest reserved price plus its burst VM-hours on demand, such that in every 10-minute "
        "window the VMs carry the load, a VM of SKU j carrying k_j / n_jw of window w's load "
        "(k_j replicas a VM, n_jw the replicas j alone needs for w at the SLO); reserved counts "
        "integer, burst continuous then rounded up; scipy's milp (HiGHS). A mix is simulated as "
        "one target per SKU with the load split in proportion to the capacity the program gives "
        "each (an approximation of a weighted router)."
    )
    rows = [
        [
            p.screened.candidate.label,
            str(p.reserved),
            p.reserved_term.replace("_", " "),
            str(p.burst_peak),
            f"{100 * p.share:.1f} %",
        ]
        for p in m.parts
    ]
    h, md = _table(["SKU x tensor parallel", "reserved VMs", "term", "burst peak VMs",
                    "share of load"], rows) if m.pays else ("", "")  # fmt: skip
    body_h, body_m = f"<p>{html.escape(verdict)}</p>" + h, verdict + "\n\n" + md
    if plan.mix_runs:
        rows = [
            [
                r.label,
                f"{100 * r.part.share:.1f} %",
                f"{100 * r.summary['slo_attainment']:.2f} %",
                _num(r.summary["replica_hours"], 1),
                _num(r.usd_per_month, 0),
            ]
            for r in plan.mix_runs
        ]
        total = sum(r.usd_per_month for r in plan.mix_runs)
        att = mix_attainment(plan.mix_runs)
        rows.append(["the mix", "100 %", f"{100 * att:.2f} %", "", _num(total, 0)])
        h2, md2 = _table(["target", "share of load", "SLO attainment", "replica-h",
                          "USD / month"], rows)  # fmt: skip
        met = "meets" if att >= plan.input.slo.share else "does NOT meet"
        said = f"Simulated, the mix {met} the SLO; its config is controller-mix.yaml."
        body_h += h2 + f"<p>{html.escape(said)}</p><pre>{html.escape(mix_config(plan))}</pre>"
        body_m += "\n" + md2 + "\n" + said + "\n\n```yaml\n" + mix_config(plan) + "```\n"
    body_h += f"<p class='note'>{html.escape(how)}</p>"
    body_m += "\n" + how + "\n"
    return body_h, body_m


def _table(headers: list[str], rows: list[list[str]]) -> tuple[str, str]:
    """(HTML, Markdown) of one table."""
    h = "".join(f"<th>{html.escape(x)}</th>" for x in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in r) + "</tr>" for r in rows
    )
    md = "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n"
    md += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>", md


def _sections(plan: Plan) -> list[tuple[str, str, str]]:
    """(title, HTML body, Markdown body) in order; figures marked as {fig:NAME}."""
    c = plan.chosen
    out = []
    if c is None:
        summary = (
            "No simulated configuration met the SLO on every replay: see the screen, the "
            "finalists and the replays."
        )
    else:
        b = c.best
        summary = (
            f"Run {plan.input.model_name} on {c.candidate.sku.name} (tensor parallel "
            f"{c.candidate.tensor_parallel}, {c.candidate.replicas_per_vm} replica(s) a VM) with "
            f"{c.spec['policy']}: SLO attainment {100 * c.summary['slo_attainment']:.2f} % "
            f"({plan.input.slo.label}). Reserve {b.reserved} VM(s) "
            f"({b.term.replace('_', ' ')}) and burst up to "
            f"{math.ceil(plan.max_replicas / c.candidate.replicas_per_vm)} on demand: "
            f"USD {b.usd_per_month:,.0f} a month (all on demand: USD "
            f"{c.splits[0].usd_per_month:,.0f})."
        )
    out.append(("Recommendation", f"<p class='rec'>{html.escape(summary)}</p>", summary + "\n"))
    inputs = [
        f"profile: {plan.input.profile_name} ({plan.input.profile.duration_s / 86400:.1f} days)",
        f"model: {plan.input.model_name}",
        f"SLO: {plan.input.slo.label}",
        f"growth: {plan.input.growth.label}",
        f"GPU quota: {'none stated' if plan.input.quota_gpus is None else plan.input.quota_gpus}",
        *plan.input.notes,
    ]
    li = "".join(f"<li>{html.escape(x)}</li>" for x in inputs)
    out.append(("Inputs", f"<ul>{li}</ul>", "".join(f"- {x}\n" for x in inputs)))
    out.append(("Load and replicas over time", "{fig:load.png}", "{fig:load.png}"))
    rows = [
        [
            s.candidate.label,
            str(s.candidate.replicas_per_vm),
            _num(s.stats.mean_s),
            _num(int(s.needed.max())) if s.feasible and s.needed.size else "-",
            _num(s.lower_usd_month, 0) if s.feasible else "-",
            "simulated"
            if s.simulated
            else (
                s.why
                or "pruned: lower bound above the best SKU's by more than "
                f"{100 * plan.input.prune:g} %"
            ),
        ]
        for s in sorted(plan.screened, key=lambda s: s.lower_usd_month)
    ]
    h, m = _table(
        [
            "SKU x tensor parallel",
            "replicas / VM",
            "mean service s",
            "peak replicas needed",
            "lower bound USD / month",
            "then",
        ],
        rows,
    )
    out.append(("Every SKU by the queueing model (the lower bound)", h, m))
    rows = [
        [
            s.label,
            f"{100 * s.summary['slo_attainment']:.2f} %",
            "yes" if s.meets else "no",
            _num(s.summary["latency_p95_s"]),
            _num(s.summary["latency_p99_s"]),
            _num(s.summary["replica_hours"], 1),
            _num(s.gpu_hours, 1),
            _num(s.splits[0].usd_per_month, 0),
            _num(s.best.usd_per_month, 0),
            f"{s.best.reserved} ({s.best.term.replace('_', ' ')})",
        ]
        for s in sorted(plan.simulated, key=lambda s: s.best.usd_per_month)
    ]
    h, m = _table(
        [
            "SKU: policy",
            "SLO attainment",
            "meets",
            "latency p95 s",
            "p99 s",
            "replica-h",
            "GPU-h",
            "USD / month on demand",
            "USD / month best split",
            "reserved VMs",
        ],
        rows,
    )
    ranked = (
        f"Simulated on the profile's {plan.rank_window} (its costs are that window's, a month "
        "long), ranked by cost; the recommendation's own figures come from the whole profile."
        if plan.rank_window != "whole profile"
        else "Simulated on the whole profile."
    )
    out.append(
        (
            "The finalists, simulated with cold starts",
            f"<p>{html.escape(ranked)}</p>" + h + "{fig:pareto.png}",
            ranked + "\n\n" + m + "{fig:pareto.png}",
        )
    )
    if c is not None:
        rows = [
            [
                x.term.replace("_", " "),
                str(x.reserved),
                f"{100 * x.break_even_share:.0f} %",
                _num(x.burst_vm_hours_per_month, 0),
                _num(x.usd_per_month, 0),
                _num(x.usd_per_month_spot_burst, 0),
            ]
            for x in c.splits
        ]
        h, m = _table(
            [
                "term",
                "reserved VMs",
                "break-even busy share",
                "burst VM-h / month",
                "USD / month",
                "USD / month, burst on spot",
            ],
            rows,
        )
        out.append(("Reserved floor and burst", h + "{fig:week.png}", m + "{fig:week.png}"))
    if plan.tried:
        rows = [
            [
                t["label"],
                x["replay"],
                str(x["seed"]),
                f"{100 * x['slo_attainment']:.2f} %",
                "yes" if x["slo_met"] else "NO",
                _num(x["replica_hours"], 1),
            ]
            for t in plan.tried
            for x in t["replays"]
        ]
        h, m = _table(["configuration", "replay", "seed", "SLO attainment", "meets", "replica-h"],
                      rows)  # fmt: skip
        why = (
            "The cheapest finalists that met the SLO, in turn, replayed on the whole profile, "
            "on other seeds and on the held-out part (each run starting from the screen's "
            "replicas in its first window); the recommendation is the first that met it on "
            "every replay."
        )
        out.append(("Replays", f"<p>{why}</p>" + h, why + "\n\n" + m))
    if plan.growth:
        rows = [
            [
                str(g.months),
                f"x{g.factor:.2f}",
                _num(g.peak_rps, 0),
                str(g.peak_replicas),
                str(g.peak_vms),
                str(g.peak_gpus),
                _num(g.usd_month_lower, 0),
                "yes" if g.within_max else "NO",
                "-" if g.within_quota is None else ("yes" if g.within_quota else "NO"),
            ]
            for g in plan.growth
        ]
        h, m = _table(
            [
                "months",
                "load",
                "peak req/s",
                "peak replicas",
                "peak VMs",
                "peak GPUs",
                "lower bound USD / month",
                "within max_replicas",
                "within quota",
            ],
            rows,
        )
        failing = next(
            (g for g in plan.growth if not g.within_max or g.within_quota is False), None
        )
        when = (
            (
                f"<p>The plan stops meeting the SLO at month {failing.months}: raise max_replicas "
                "or the quota before then.</p>"
            )
            if failing
            else "<p>The plan holds over the horizon.</p>"
        )
        if len(plan.growth) < 2:
            when = (
                "<p>No growth stated: the table is today's load. Give --growth (e.g. "
                "30%/quarter) and --horizon for the month it stops meeting the SLO.</p>"
            )
        out.append(
            (
                "Growth",
                h + when + "{fig:growth.png}",
                m + "\n" + _strip(when) + "\n{fig:growth.png}",
            )
        )
    mixed = _mix_section(plan)
    if mixed is not None:
        out.append(("A mix of SKUs", *mixed))
    config = controller_config(plan)
    if config:
        out.append(
            (
                "Controller config (controller.yaml)",
                f"<pre id='config'>{html.escape(config)}</pre>",
                f"```yaml\n{config}```\n",
            )
        )
    li = "".join(f"<li>{html.escape(x)}</li>" for x in ASSUMPTIONS)
    out.append(("Assumptions", f"<ul>{li}</ul>", "".join(f"- {x}\n" for x in ASSUMPTIONS)))
    return out


def _strip(text: str) -> str:
    return text.replace("<p>", "").replace("</p>", "")


CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;font-size:13px;margin:.6em 0}"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}img{max-width:100%}"
    ".rec{font-size:17px;background:#eef6ee;border-left:5px solid #3a3;padding:.7em 1em}"
    "pre{background:#f6f6f6;padding:1em}"
)


def write(plan: Plan, out: Path) -> dict[str, Path]:
    """Every file of the plan under `out`; their paths by kind."""
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    for name, draw in FIGURES.items():
        if name == "growth.png" and len(plan.growth) < 2:
            continue
        buffer = io.BytesIO()
        draw(plan).savefig(buffer, format="png", dpi=100)
        images[name] = buffer.getvalue()
        (out / name).write_bytes(images[name])
    parts_html, parts_md = [], []
    for title, html_part, md_part in _sections(plan):
        body_html, body_md = html_part, md_part
        for name, data in images.items():
            uri = "data:image/png;base64," + base64.b64encode(data).decode()
            body_html = body_html.replace("{fig:" + name + "}", f"<img alt='{name}' src='{uri}'>")
            body_md = body_md.replace("{fig:" + name + "}", f"\n![{name}]({name})\n")
        body_html = re.sub(r"\{fig:[^}]*\}", "", body_html)  # a figure not drawn (no growth)
        body_md = re.sub(r"\{fig:[^}]*\}", "", body_md)
        parts_html.append(f"<h2>{html.escape(title)}</h2>\n{body_html}")
        parts_md.append(f"## {title}\n\n{body_md}")
    title = f"replicast plan: {plan.input.model_name} on {plan.input.profile_name}"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>\n"
        + "\n".join(parts_html)
        + "</body></html>\n"
    )
    paths = {"html": out / "plan.html", "md": out / "plan.md", "json": out / "plan.json"}
    paths["html"].write_text(page, encoding="utf-8")
    paths["md"].write_text(f"# {title}\n\n" + "\n".join(parts_md), encoding="utf-8")
    paths["json"].write_text(json.dumps(as_json(plan), indent=1, default=_plain) + "\n")
    config = controller_config(plan)
    if config:
        paths["config"] = out / "controller.yaml"
        paths["config"].write_text(config)
    mixed = mix_config(plan)
    if mixed:
        paths["mix_config"] = out / "controller-mix.yaml"
        paths["mix_config"].write_text(mixed)
    return paths


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
