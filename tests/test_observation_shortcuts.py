"""The shortcuts the tick path takes agree with the long ways they replace: an Observation's
`with_replicas` is `dataclasses.replace`, `to_dict` reads every field, and the fast paths of
its checks give what the full checks give (the simulator's bit-identity rests on these)."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given
from hypothesis import strategies as st

from policies.observation import SIGNALS, Observation, _signal

VALUES = st.none() | st.floats(allow_nan=True) | st.integers(-5, 10**16) | st.booleans()


@given(
    st.fixed_dictionaries({name: VALUES for name in SIGNALS}),
    st.dictionaries(st.text(max_size=4), VALUES, max_size=3),
    st.integers(0, 50),
)
def test_shortcuts_give_what_the_long_ways_give(
    signals: dict[str, object], extra: dict[str, object], replicas: int
) -> None:
    obs = Observation(now_s=1, replicas=3, ready_replicas=2, extra=extra, **signals)  # type: ignore[arg-type]
    for name in SIGNALS:
        assert _same(getattr(obs, name), _signal(name, signals[name]))
    expected = {k: _signal(f"extra.{k}", v) for k, v in extra.items()}
    assert dict(obs.extra) == {k: v for k, v in expected.items() if v is not None}
    assert obs.with_replicas(replicas) == dataclasses.replace(obs, replicas=replicas)
    as_dict = obs.to_dict()
    assert list(as_dict) == [f.name for f in dataclasses.fields(Observation)]
    assert Observation.from_dict(as_dict) == obs


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))
