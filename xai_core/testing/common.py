"""What every contract kit shares: the error, the table entry of a check (:class:`Check`) and
the runner of a table (:func:`run_checks`), the small default model, the kit's first call
(:class:`Reference`) and the watch on the model's hooks, state and logits (:class:`ModelWatch`).

The checks themselves live with their kit (``techniques``, ``metrics``, ``models``), each kit's
in one ordered table.
"""


from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import torch
from torch import Tensor, nn

from xai_core.contracts.attributor import Attributor
from xai_core.contracts.metric import Metric
from xai_core.contracts.model import ModelHandle, as_model_handle
from xai_core.contracts.synthesizer import Synthesizer
from xai_core.plugins.factory import get_attributor, get_metric, get_synthesizer


class ContractError(AssertionError):
    """A technique broke one or more rules of the contract; the message lists them."""


class TinyNet(nn.Module):
    """A small CNN with in-place ReLUs, batch norm and a linear head: fast, and it exercises the
    things techniques most often get wrong (in-place ops, eval-mode layers, module reuse)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, num_classes)
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


def default_model() -> ModelHandle:
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(1234)
    module = TinyNet().eval()
    with torch.no_grad():
        # Non-trivial batch-norm statistics, so eval mode matters.
        module.features[1].running_mean.uniform_(-0.2, 0.2)
        module.features[1].running_var.uniform_(0.5, 1.5)
    torch.random.set_rng_state(generator_state)
    return as_model_handle(module)


def hook_count(module: nn.Module) -> int:
    """Torch hooks of every kind registered on ``module`` and its submodules."""
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in module.modules()
    )


def state_snapshot(module: nn.Module) -> dict[str, Any]:
    return {
        "training": [m.training for m in module.modules()],
        "requires_grad": [p.requires_grad for p in module.parameters()],
        "state": {k: v.detach().clone() for k, v in module.state_dict().items()},
    }


def compare_state(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems = []
    if before["training"] != after["training"]:
        problems.append("the model's train/eval modes changed")
    if before["requires_grad"] != after["requires_grad"]:
        problems.append("parameters' requires_grad flags changed")
    for key, value in before["state"].items():
        if not torch.equal(value, after["state"][key]):
            problems.append(f"weight or buffer {key!r} changed")
            break
    return problems


class ModelWatch:
    """The model's hooks, state and logits before a kit's calls, to compare with after them."""

    def __init__(self, module: nn.Module, inputs: Tensor):
        """:param inputs: what ``module`` takes (normalized images) for the logits."""
        self.module, self.inputs = module, inputs
        self.logits = self._logits()
        self.state = state_snapshot(module)
        self.hooks = hook_count(module)

    def _logits(self) -> Tensor:
        with torch.no_grad():
            return self.module(self.inputs)

    def hooks_left(self) -> list[str]:
        left = hook_count(self.module) - self.hooks
        return [f"{left} torch hook(s) left on the model"] if left else []

    def state_changes(self) -> list[str]:
        problems = compare_state(self.state, state_snapshot(self.module))
        if not torch.equal(self._logits(), self.logits):
            problems.append("the model's logits changed after the call")
        return problems


class Watched(Protocol):
    watch: ModelWatch


def hooks_check(run: Watched) -> list[str]:
    """The ``hooks`` check every technique kit shares."""
    return run.watch.hooks_left()


def state_check(run: Watched) -> list[str]:
    """The ``state`` check every technique kit shares."""
    return run.watch.state_changes()


class ReferenceFailed(Exception):
    """The kit's first call raised, so a check that compares with its result cannot run."""


@dataclass
class Reference:
    """The result of a kit's first call, the one the checks compare with, or why it failed."""

    value: Any = None
    failure: str | None = None

    @classmethod
    def of(cls, call: Callable[[], Any], what: str) -> Reference:
        """Call ``call`` (``what`` names it in the message) and keep its result or its error:
        a crash is a broken rule too, listed with the rest."""
        try:
            return cls(value=call())
        except Exception as exc:  # noqa: BLE001
            return cls(failure=f"{what} raised {type(exc).__name__}: {exc}")

    def result(self) -> Any:
        if self.failure is not None:
            raise ReferenceFailed(self.failure)
        return self.value


Subject = TypeVar("Subject")


@dataclass(frozen=True)
class Check(Generic[Subject]):
    """One row of a kit's table: the check's name (what ``checks=`` selects, what a problem is
    listed under), the function returning its problems (none: the rule is kept) and the rule in
    one line (for the docs)."""

    name: str
    run: Callable[[Subject], list[str]] = dataclasses.field(repr=False)
    rule: str


def check_names(table: Sequence[Check[Any]]) -> tuple[str, ...]:
    return tuple(check.name for check in table)


#: The rows every technique kit's table shares.
HOOKS_CHECK: Check[Any] = Check(
    "hooks", hooks_check, "no torch hook left on any module afterwards"
)
STATE_CHECK: Check[Any] = Check(
    "state",
    state_check,
    "model mode, `requires_grad` flags and weights as before, logits bit-identical",
)


def resolve_technique(
    kind: type, technique: str | type | Any, params: Mapping[str, Any] | None
) -> Any:
    """An instance of ``technique`` (a registered name, a class or an instance) of ``kind``."""
    if isinstance(technique, str):
        factories = {Attributor: get_attributor, Synthesizer: get_synthesizer, Metric: get_metric}
        return factories[kind](technique, **dict(params or {}))
    if isinstance(technique, type):
        return technique(**dict(params or {}))
    return technique


def selected_checks(table: Sequence[Check[Any]], names: Iterable[str]) -> list[Check[Any]]:
    """The rows of ``table`` called ``names``, in that order; a ValueError for an unknown one."""
    rows = {check.name: check for check in table}
    unknown = [name for name in names if name not in rows]
    if unknown:
        raise ValueError(
            f"unknown check {unknown[0]!r}; valid checks: {', '.join(check_names(table))}"
        )
    return [rows[name] for name in names]


def run_checks(
    label: str,
    table: Sequence[Check[Subject]],
    names: Iterable[str],
    subject: Subject,
    reference: Reference | None = None,
) -> None:
    """Run the checks ``names`` of ``table`` on ``subject``; raise one :class:`ContractError`
    listing every problem, each under its check's name (``label`` names the plugin).

    :param reference: the kit's first call; when it failed, that is the first problem and the
        checks that need its result are listed as not run.
    """
    problems = [f"call: {reference.failure}"] if reference and reference.failure else []
    not_run: list[str] = []
    for check in selected_checks(table, list(names)):
        try:
            problems.extend(f"{check.name}: {problem}" for problem in check.run(subject))
        except ReferenceFailed:
            not_run.append(check.name)
        except Exception as exc:  # noqa: BLE001 - a crash is a broken rule too, listed
            problems.append(f"{check.name}: raised {type(exc).__name__}: {exc}")
    if not_run:
        problems.append(f"not run, as the call failed: {', '.join(not_run)}")
    if problems:
        raise ContractError(f"{label}: " + "; ".join(problems))


def run_technique_checks(
    run: Any, call: Callable[[], Any], what: str, table: Sequence[Check[Any]], names: Iterable[str]
) -> None:
    """A technique kit's last step: the first call (``what`` names it) into ``run.reference``,
    then the checks ``names`` of ``table`` on ``run``, labelled with ``run.method``."""
    run.reference = Reference.of(call, what)
    run_checks(label_of(run.method), table, names, run, run.reference)


def technique_and_model(
    kind: type,
    technique: str | type | Any,
    params: Mapping[str, Any] | None,
    model: ModelHandle | nn.Module | None,
) -> tuple[Any, ModelHandle]:
    """The technique to check (see :func:`resolve_technique`) and the model to check it on
    (``model``, else :class:`TinyNet`)."""
    handle = as_model_handle(model) if model is not None else default_model()
    return resolve_technique(kind, technique, params), handle


def default_targets(handle: ModelHandle, n: int, shift: int = 0) -> list[int]:
    """One class per input, ``shift, shift + 1, ...`` modulo the model's classes."""
    return [(i + shift) % (handle.num_classes or 2) for i in range(n)]


def label_of(technique: Any) -> str:
    return technique.name or type(technique).__name__


def default_params(technique_cls: type) -> dict[str, Any]:
    """The defaults of a technique's ``Params`` as a dict (handy for parametrized tests)."""
    return dataclasses.asdict(technique_cls.Params())
