"""Config that validates also works: finite documented ranges, no credentials in URLs, basic
auth that reaches Prometheus, `local` targets that `run` can start, registrars that can be
configured, and `defaults.permanent_error_retry_s` honoured (issue 14, item 6)."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from controller.actuators.base import SystemClock
from controller.config import (
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    BasicAuth,
    check_config,
    json_schema,
    validate_config,
)
from controller.options import build_parser, options_from
from controller.prometheus import PrometheusSource
from controller.registrars import AppGatewayRegistrar, FileRegistrar, HttpRegistrar
from controller.run import Resources, build_actuators, close_actuators

HEAD = """\
apiVersion: replicast/v1
prometheus: {url: http://127.0.0.1:9090}
"""
TARGET = """\
targets:
  - name: llama
    scale_target: {kind: Deployment, namespace: llm, name: llama}
    signals: {preset: vllm}
    policy: {policy: hpa, metric: in_flight, target_per_replica: 8, max_replicas: 10}
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    out = [str(p) for p in validate_config(path)]
    assert all("\n" not in line and line.startswith(f"{path}:") for line in out), out
    return [line.split(": ", 1)[1] for line in out]


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        ("interval_s: .inf", "defaults.interval_s: must be a finite number (got inf)"),
        ("interval_s: .nan", "defaults.interval_s: must be a finite number (got nan)"),
        ("interval_s: 0.001", "defaults.interval_s: must be >= 0.1 (got 0.001)"),
        ("interval_s: 7200", "defaults.interval_s: must be <= 3600 (got 7200)"),
        ("staleness_s: .inf", "defaults.staleness_s: must be a finite number (got inf)"),
        ("staleness_s: 100000", "defaults.staleness_s: must be <= 86400 (got 100000)"),
        (
            "{interval_s: 30, staleness_s: 10}",
            "defaults: staleness_s must be >= interval_s: data older than one interval is what "
            "a tick must be able to call stale (got staleness_s 10, interval_s 30)",
        ),
        ("permanent_error_retry_s: 0", "defaults.permanent_error_retry_s: must be >= 1 (got 0)"),
        (
            "permanent_error_retry_s: .inf",
            "defaults.permanent_error_retry_s: must be a finite number (got inf)",
        ),
    ],
    ids=[
        "interval-inf", "interval-nan", "interval-tiny", "interval-huge", "staleness-inf",
        "staleness-huge", "staleness-below-interval", "retry-zero", "retry-inf",
    ],
)  # fmt: skip
def test_every_number_has_a_finite_range(tmp_path: Path, defaults: str, expected: str) -> None:
    block = defaults if defaults.startswith("{") else "{" + defaults + "}"
    got = problems(tmp_path, HEAD + f"defaults: {block}\n" + TARGET)
    assert got == [expected]


def test_the_interval_range_fits_a_soak_and_a_compressed_sandbox() -> None:
    assert MIN_INTERVAL_S <= 0.5 and MAX_INTERVAL_S == 3600
    props = json_schema()["$defs"]["Defaults"]["properties"]["interval_s"]
    assert (props["minimum"], props["maximum"]) == (0.1, 3600)


def test_a_target_interval_longer_than_its_staleness_is_refused(tmp_path: Path) -> None:
    text = HEAD + TARGET + "    interval_s: 120\n"
    [line] = problems(tmp_path, text)
    assert line.startswith("targets[0]: staleness_s must be >= interval_s")
    assert line.endswith("(got staleness_s 60, interval_s 120)")


def test_a_huge_replica_bound_is_refused(tmp_path: Path) -> None:
    text = HEAD + TARGET.replace("max_replicas: 10", "max_replicas: 100000000")
    [line] = problems(tmp_path, text)
    assert line.startswith("targets[0].policy.max_replicas: must be <= 10000")


@pytest.mark.parametrize(
    "url", ["http://user:pw@127.0.0.1:9090", "https://token@prom.example:443", "http://:pw@h:1"]
)
def test_credentials_in_the_prometheus_url_are_refused(tmp_path: Path, url: str) -> None:
    text = f"apiVersion: replicast/v1\nprometheus: {{url: '{url}'}}\n" + TARGET
    [line] = problems(tmp_path, text)
    assert line.startswith("prometheus.url: must not hold a user or password")
    assert "auth: {type: basic" in line
    assert "pw" not in line.split("(got", 1)[0] or "(got" not in line


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("{type: basic, username: u}", "set exactly one of password_file or password_env"),
        ("{type: basic, username: 'a:b', password_env: P}", "username: must not contain ':'"),
        ("{type: basic, username: u, password: pw}", "prometheus.auth.password: unknown key"),
    ],
)
def test_basic_auth_needs_one_password_source(tmp_path: Path, auth: str, expected: str) -> None:
    text = f"apiVersion: replicast/v1\nprometheus: {{url: 'http://h:9090', auth: {auth}}}\n"
    [line] = problems(tmp_path, text + TARGET)
    assert expected in line


@pytest.mark.asyncio
async def test_basic_auth_sends_the_header_prometheus_behind_a_proxy_expects(
    tmp_path: Path,
) -> None:
    seen: list[str] = []

    async def query(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        return web.json_response(body)

    app = web.Application()
    app.router.add_route("*", "/api/v1/query", query)
    (tmp_path / "pw").write_text("s3cret\n")
    async with TestServer(app, host="127.0.0.1") as server:
        url = f"http://127.0.0.1:{server.port}"
        text = (
            f"apiVersion: replicast/v1\nprometheus: {{url: '{url}', auth: {{type: basic, "
            f"username: scraper, password_file: '{tmp_path / 'pw'}'}}}}\n" + TARGET
        )
        path = tmp_path / "config.yaml"
        path.write_text(text)
        config, found = check_config(path)
        assert config is not None, found
        assert isinstance(config.prometheus.auth, BasicAuth)
        async with aiohttp.ClientSession() as session:
            source = PrometheusSource(config.prometheus, session=session)
            await source.read(list(config.targets), 0.0)
    expected = "Basic " + base64.b64encode(b"scraper:s3cret").decode()
    assert seen and set(seen) == {expected}


def test_a_local_target_without_base_port_fails_validate_as_run_would(tmp_path: Path) -> None:
    text = HEAD + TARGET.replace(
        "{kind: Deployment, namespace: llm, name: llama}", "{kind: local, command: [server]}"
    )
    [line] = problems(tmp_path, text)
    assert line.startswith("targets[0].scale_target.base_port: required key is missing")


LOCAL = """\
targets:
  - name: sandbox
    scale_target:
      kind: local
      command: [server, --port, '{{port}}']
      base_port: 18000
      registrar: {registrar}
    labels: {{namespace: sandbox}}
    signals: {{preset: vllm}}
    policy: {{policy: hpa, metric: in_flight, target_per_replica: 8, max_replicas: 4}}
"""
ACI = """\
targets:
  - name: llm
    scale_target:
      kind: aci
      subscription_id: 00000000-0000-0000-0000-000000000000
      resource_group: rg
      name_prefix: llm
      location: westeurope
      template: {{properties: {{containers: [{{name: llm}}]}}}}
      registrar: {registrar}
    labels: {{namespace: aci}}
    signals: {{preset: vllm}}
    policy: {{policy: hpa, metric: in_flight, target_per_replica: 8, max_replicas: 4}}
"""


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "registrar", "kind"),
    [
        (LOCAL, "{type: file, path: /tmp/replicast-backends.json}", FileRegistrar),
        (LOCAL, "{type: http, url: 'http://127.0.0.1:9/backends', timeout_s: 2}", HttpRegistrar),
        (ACI, "{type: file, path: /tmp/replicast-backends.json}", FileRegistrar),
        (
            ACI,
            "{type: app_gateway, resource_group: net, gateway: gw, backend_pool: llm}",
            AppGatewayRegistrar,
        ),
    ],
    ids=["local-file", "local-http", "aci-file", "aci-app-gateway"],
)
async def test_a_registrar_block_gives_the_actuator_its_router(
    tmp_path: Path, body: str, registrar: str, kind: type
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + body.format(registrar=registrar))
    config, found = check_config(path)
    assert config is not None, found
    async with aiohttp.ClientSession() as session:
        actuators = build_actuators(config, Resources(session, SystemClock(), kube=None))
        [actuator] = actuators.values()
        made = getattr(actuator, "registrar", None)
        assert isinstance(made, kind)
        if isinstance(made, AppGatewayRegistrar):  # the target's subscription by default
            assert made.gateway.subscription_id == "00000000-0000-0000-0000-000000000000"
            assert (made.gateway.resource_group, made.gateway.name) == ("net", "gw")
        await close_actuators(actuators)


def test_an_app_gateway_cannot_route_to_local_replicas(tmp_path: Path) -> None:
    registrar = "{type: app_gateway, resource_group: net, gateway: gw, backend_pool: llm}"
    [line] = problems(tmp_path, HEAD + LOCAL.format(registrar=registrar))
    assert line.startswith(
        "targets[0].scale_target.registrar: type must be one of 'file', 'http' (got 'app_gateway')"
    )


@pytest.mark.parametrize(
    ("registrar", "expected"),
    [
        ("{type: http, url: 'ftp://x'}", "targets[0].scale_target.registrar.url: must be an"),
        ("{type: file}", "targets[0].scale_target.registrar.path: required key is missing"),
        ("{type: dns}", "targets[0].scale_target.registrar: type must be one of"),
    ],
)
def test_registrar_mistakes_are_one_line(tmp_path: Path, registrar: str, expected: str) -> None:
    [line] = problems(tmp_path, HEAD + LOCAL.format(registrar=registrar))
    assert line.startswith(expected), line


def test_defaults_permanent_error_retry_s_reaches_the_loop_and_the_flag_wins(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(HEAD + "defaults: {permanent_error_retry_s: 7}\n" + TARGET)
    config, found = check_config(path)
    assert config is not None, found
    args = build_parser().parse_args([str(path)])
    assert options_from(args, config).settings.permanent_error_retry_s == 7
    flagged = build_parser().parse_args([str(path), "--permanent-error-retry-s", "3"])
    assert options_from(flagged, config).settings.permanent_error_retry_s == 3
