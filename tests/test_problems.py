"""policies.problems: the one translator of pydantic errors that the controller config, the
policy specs and the simulator's files share (`file:line:col: path: why`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, ValidationError

from controller.config import validate_config
from policies import SpecError, autoscaler, yaml_input
from policies.problems import Problem, locate, parse_path, problems, render_path, translate
from policies.spec import StrictModel


class Cat(StrictModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(StrictModel):
    kind: Literal["dog"]
    name: str = Field(min_length=1)


class Home(StrictModel):
    pets: list[Annotated[Cat | Dog, Field(discriminator="kind")]] = Field(min_length=1)
    rooms: float = Field(gt=0)


def _lines(text: str, **hints: str) -> list[str]:
    data, node = yaml_input.load(text)
    marks, _ = yaml_input.positions(node)
    try:
        Home.model_validate(data)
    except ValidationError as error:
        return [str(p) for p in problems(error, Home, "home.yaml", marks, hints=hints)]
    return []


def test_each_error_is_one_line_at_its_key_with_the_users_path() -> None:
    text = "pets:\n  - {kind: cat, lives: 12}\n  - {kind: dog, name: ''}\n  - {kind: cow}\n"
    text += "rooms: 0\n"
    assert _lines(text) == [
        "home.yaml:2:24: pets[0].lives: must be <= 9 (got 12)",
        "home.yaml:3:23: pets[1].name: must have at least 1 character(s) (got '')",
        "home.yaml:4:5: pets[2]: kind must be one of 'cat', 'dog' (got 'cow')",
        "home.yaml:5:8: rooms: must be > 0 (got 0)",
    ]


def test_an_unknown_key_points_at_the_key_and_names_the_allowed_ones_and_the_hint() -> None:
    text = "pets: [{kind: cat, lives: 3, token: x}]\nrooms: 2\n"
    assert _lines(text, token="keep secrets out") == [
        "home.yaml:1:30: pets[0].token: unknown key; allowed keys: kind, lives; keep secrets out"
    ]


def test_a_missing_key_points_at_the_mapping_that_lacks_it_and_a_list_at_its_length() -> None:
    assert sorted(_lines("pets: []\n")) == [
        "home.yaml:1:1: rooms: required key is missing",
        "home.yaml:1:7: pets: must have at least 1 item(s) (got [])",
    ]


def test_a_long_value_is_cut_and_a_key_with_odd_characters_is_quoted() -> None:
    with pytest.raises(ValidationError) as caught:
        Home.model_validate({"pets": [{"kind": "dog", "name": "x"}], "rooms": "y" * 200, "a\nb": 1})
    lines = [str(p) for p in problems(caught.value, Home, "")]
    assert all("\n" not in line and len(line) < 160 for line in lines), lines
    assert "rooms: must be a number (got 'yyyyyyyy" in lines[0] and lines[0].endswith("...)")
    assert lines[1].startswith("['a\\nb']: unknown key; allowed keys: pets, rooms")


def test_the_controller_config_and_a_policy_spec_word_the_same_error_the_same_way(
    tmp_path: Path,
) -> None:
    spec = {"policy": "hpa", "metric": "in_flight", "target_per_replica": -1, "max_replicas": 4}
    with pytest.raises(SpecError) as caught:
        autoscaler({**spec, "colour": "red"})
    from_spec = str(caught.value)
    config = tmp_path / "c.yaml"
    config.write_text(
        "apiVersion: replicast/v1\nprometheus: {url: 'http://127.0.0.1:9090'}\ntargets:\n"
        "  - name: a\n    scale_target: {kind: Deployment, namespace: n, name: a, colour: red}\n"
        "    policy: {policy: hpa, metric: in_flight, target_per_replica: -1, max_replicas: 4}\n"
    )
    from_config = [str(p) for p in validate_config(config)]
    assert "target_per_replica: must be > 0 (got -1)" in from_spec
    assert any(line.endswith("target_per_replica: must be > 0 (got -1)") for line in from_config)
    assert "colour: unknown key; allowed keys: " in from_spec
    assert any("scale_target.colour: unknown key; allowed keys: " in x for x in from_config)


def test_positions_report_duplicate_keys_in_document_order() -> None:
    _, node = yaml_input.load("a: 1\nb: {c: 1, c: 2}\na: 3\n")
    marks, duplicates = yaml_input.positions(node)
    assert [(render_path(loc), why) for loc, why in duplicates] == [
        ("a", "duplicate key (first on line 1)"),
        ("b.c", "duplicate key (first on line 2)"),
    ]
    assert marks.find(("b", "c")) == (2, 14) and marks.find(("b", "c"), at_key=True) == (2, 11)
    assert str(locate("f.yaml", marks, ("b", "zzz"), "why")) == "f.yaml:2:4: b.zzz: why"
    assert str(Problem("", "", "why")) == "why" and translate.__doc__


@given(
    st.lists(
        st.one_of(st.integers(0, 99), st.text(min_size=1, max_size=8).filter(lambda s: s.strip())),
        min_size=1,
        max_size=5,
    ).filter(lambda loc: isinstance(loc[0], str) and not loc[0].isdigit())
)
def test_parse_path_reads_back_what_render_path_wrote(loc: list[str | int]) -> None:
    keys = [p for p in loc if isinstance(p, int) or not p.isdigit()]  # "7" renders as a word
    assert parse_path(render_path(keys)) == tuple(keys)
