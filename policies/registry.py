"""Where policy names come from: built-ins, the `replicast.policies` entry points, "module:attr".

In: a name from a spec's `policy` key. Out: a `PolicyFactory`. A built-in name wins over an
entry point of the same name (a plugin cannot silently replace `hpa`); a plugin that fails to
load is reported by `available()` with its error instead of breaking every other policy.
Named entry points can be kept from loading (as pytest's `-p no:name`): the shell reads
REPLICAST_BLOCK_PLUGINS="name1,name2" and calls `block_plugins` (controller/dispatch.py); the
core reads no environment.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points

from pydantic import BaseModel

from policies.policy import PolicyFactory
from policies.spec import SpecError

ENTRY_POINT_GROUP = "replicast.policies"


# Each built-in module exposes `FACTORY` (or `FACTORIES`); this order is `replicast policies`'.
BUILTIN_MODULES: tuple[str, ...] = (
    "policies.hpa",
    "policies.keda",
    "policies.knative",
    "policies.ray",
    "policies.slo",
    "policies.predictive",
    "policies.planner",
    "policies.pid",
    "policies.schedule",
    "policies.combinators",
)


def builtins() -> dict[str, PolicyFactory]:
    # Imported here so that importing the registry stays cheap and acyclic.
    factories: list[PolicyFactory] = []
    for name in BUILTIN_MODULES:
        module = importlib.import_module(name)
        factories.extend(getattr(module, "FACTORIES", None) or (module.FACTORY,))
    return {f.name: f for f in factories}


@dataclass(frozen=True, slots=True)
class Listing:
    name: str
    origin: str  # "built-in", "entry point <dist>", or "error"
    summary: str


_BLOCKED: set[str] = set()  # set once by the shell at startup, before any spec is built


def block_plugins(names: Iterable[str]) -> None:
    """Keep these `replicast.policies` entry points from loading, for the rest of the process."""
    _BLOCKED.clear()
    _BLOCKED.update(n.strip() for n in names if n.strip())


def _blocked(blocked: Iterable[str] | None) -> set[str]:
    return set(_BLOCKED) if blocked is None else set(blocked)


def _check_factory(obj: object, label: str) -> PolicyFactory:
    if isinstance(obj, PolicyFactory):
        return obj
    raise SpecError(
        "policy",
        [
            (
                "",
                f"{label} is not a policy factory (needs name, summary, guard_defaults, "
                "example_spec and from_spec(spec)); see policies.policy.PolicyFactory",
            )
        ],
    )


def load_path(path: str) -> PolicyFactory:
    """Import "package.module:attribute" and check it is a policy factory."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise SpecError(
            "policy", [("", f"must be a registered name or 'module:attr' (got {path!r})")]
        )
    try:
        target: object = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise SpecError("policy", [("", f"cannot load {path!r}: {error}")]) from None
    return _check_factory(target, repr(path))


def available(blocked: Iterable[str] | None = None) -> list[Listing]:
    """Every policy a spec can name, built-ins first, with where it comes from; `blocked`
    entry points (default: what `block_plugins` was given) are left out."""
    skip = _blocked(blocked)
    out = [Listing(f.name, "built-in", f.summary) for f in builtins().values()]
    taken = {listing.name for listing in out}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in taken or ep.name in skip:
            continue
        dist = ep.dist.name if ep.dist is not None else "?"
        try:
            factory = _check_factory(ep.load(), f"entry point {ep.name!r}")
        except Exception as error:  # a broken plugin must not hide the others
            out.append(Listing(ep.name, "error", f"{dist}: {type(error).__name__}: {error}"))
            continue
        out.append(Listing(ep.name, f"entry point ({dist})", factory.summary))
        taken.add(ep.name)
    return out


def resolve(name: str, blocked: Iterable[str] | None = None) -> PolicyFactory:
    """The factory for a spec's `policy` value."""
    if not isinstance(name, str) or not name:
        raise SpecError("policy", [("", f"must be a policy name such as 'hpa' (got {name!r})")])
    found = builtins().get(name)
    if found is not None:
        return found
    if ":" in name:
        return load_path(name)
    skip = _blocked(blocked)
    if name not in skip:
        for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
            try:
                return _check_factory(ep.load(), f"entry point {name!r}")
            except SpecError:
                raise
            except Exception as error:
                raise SpecError(
                    "policy", [("", f"entry point {name!r} failed to load: {error}")]
                ) from None
    names = ", ".join(listing.name for listing in available(skip) if listing.origin != "error")
    raise SpecError("policy", [("", f"unknown policy {name!r}; available: {names}")])


def params_model(factory: PolicyFactory) -> type[BaseModel] | None:
    """The parameter model of a policy (`factory.params_model`, see policies/params.py): its
    keys, defaults, units (field descriptions) and bounds, e.g. for `replicast policies --params
    NAME` or a sweep's parameter check: `params_model(resolve(name)).model_json_schema()`.
    Every built-in has one; a third-party factory without `params_model` gives None."""
    model = getattr(factory, "params_model", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None
