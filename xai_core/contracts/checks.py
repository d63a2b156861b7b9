"""Run-time checks that the base classes apply to every technique and metric call.

A third-party technique that returns NaNs, an integer map or too few records, or that leaves a
torch hook on the model, should fail where it happens with a message naming the plugin, not three
steps later in a figure or in the next technique's results. The checks here are cheap (one pass
over the module tree, one pass over the result) and shared by :mod:`xai_core.contracts.technique`
and :mod:`xai_core.contracts.metric`.

What does not live here: the slower checks a plugin author runs once (determinism, batch
independence, unchanged weights), which are in :mod:`xai_core.testing`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from xai_core.errors import PluginError

__all__ = ["HookGuard", "check_tensor", "UNIT_RANGE_SLACK"]

#: The module attributes holding torch hooks, each a dict from handle id to hook.
HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
#: Side tables torch keys by the same handle id; a removed hook must leave them too.
_SIDE_TABLES = {
    "_forward_hooks": ("_forward_hooks_with_kwargs", "_forward_hooks_always_called"),
    "_forward_pre_hooks": ("_forward_pre_hooks_with_kwargs",),
}
#: How far outside ``[0, 1]`` pixel values may stray from float rounding (a blur of clamped
#: values) before they count as out of range; the callers clamp what is within it.
UNIT_RANGE_SLACK = 1e-4


class HookGuard:
    """Notes every module's torch hooks on entry; on exit removes the ones added since.

    Techniques register hooks through :class:`~xai_core.nn.hooks.HookRecorder`, which removes
    them itself, so a hook still there on exit was registered directly and would change every
    later forward pass. It is removed either way (the model is left as found) and listed in
    :attr:`leaked` so the caller can fail the call.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.leaked: list[str] = []
        self._before: dict[tuple[int, str], set[int]] = {}

    def _tables(self) -> list[tuple[str, nn.Module, str, dict[int, Any]]]:
        tables = []
        for path, module in self.module.named_modules():
            for attr in HOOK_DICTS:
                hooks = getattr(module, attr, None)
                if isinstance(hooks, dict):
                    tables.append((path, module, attr, hooks))
        return tables

    def __enter__(self) -> HookGuard:
        self._before = {(id(m), attr): set(hooks) for _, m, attr, hooks in self._tables()}
        return self

    def __exit__(self, *exc: object) -> None:
        for path, module, attr, hooks in self._tables():
            new = set(hooks) - self._before.get((id(module), attr), set())
            for key in new:
                del hooks[key]
                for side in _SIDE_TABLES.get(attr, ()):
                    getattr(module, side, {}).pop(key, None)
                kind = attr.strip("_").removesuffix("s").replace("_", " ")
                self.leaked.append(f"{kind} on {path or 'the model'!r}")

    def check(self, owner: str) -> None:
        """Raise :class:`PluginError` naming ``owner`` if a hook was left on the model."""
        if self.leaked:
            raise PluginError(
                f"{owner} left {len(self.leaked)} torch hook(s) on the model "
                f"({', '.join(sorted(self.leaked))}); they were removed. Register hooks through "
                "context.hooks, which removes them when the call returns"
            )


def check_tensor(
    value: Any,
    what: str,
    owner: str,
    shape: tuple[int, ...],
    layout: str,
    *,
    unit_range: bool = False,
) -> Tensor:
    """``value`` if it is a finite floating-point tensor of ``shape``, else a PluginError.

    :param what: what the tensor is (``maps``, ``images``), for the message.
    :param owner: who returned it (the technique and its plugin), for the message.
    :param layout: the contract's shape in words (``[N, H, W] at input resolution``).
    :param unit_range: the values must also lie in ``[0, 1]`` (pixel space).
    """
    if not isinstance(value, Tensor):
        raise PluginError(f"{owner} returned {what} of type {type(value).__name__}; the contract "
                          f"is a float tensor {layout}, here {list(shape)}")
    if tuple(value.shape) != shape:
        raise PluginError(f"{owner} returned {what} of shape {list(value.shape)}; the contract "
                          f"is {layout}, here {list(shape)}")
    if not value.is_floating_point():
        raise PluginError(f"{owner} returned {what} of dtype {value.dtype}; the contract is a "
                          "floating-point tensor (convert with .float())")
    finite = value.isfinite()
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise PluginError(f"{owner} returned {what} with {bad} NaN or infinite value(s); every "
                          "value must be finite")
    low, high = -UNIT_RANGE_SLACK, 1 + UNIT_RANGE_SLACK
    if unit_range and value.numel() and (value.min() < low or value.max() > high):
        raise PluginError(
            f"{owner} returned {what} with values in [{float(value.min()):.3g}, "
            f"{float(value.max()):.3g}]; the contract is pixel space [0, 1] (clamp them)"
        )
    return value
