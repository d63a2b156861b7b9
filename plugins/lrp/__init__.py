"""Layer-wise relevance propagation (plugin ``lrp``): zennit's composites on CNNs (issue 18).

One concept per module, all on :class:`xai_core.GradientAttributor`:

* :mod:`.attributor`: the ``lrp`` attributor, its parameters and the pixel bounds of ``zbox``;
* :mod:`.composites`: which layer gets which rule (the named composites, ``layer_rules``
  overrides, the check for layers LRP cannot propagate through);
* :mod:`.rules`: the rules (epsilon, z-plus, alpha-beta, gamma, flat, z-box, pass);
* :mod:`.canonize`: batch norms merged into the layer before them, residual sums;
* :mod:`.propagation`: the hooks that put the rules into one backward pass.

The reference is zennit (``zennit.composites``, ``zennit.canonizers``);
tests/plugins/lrp/test_lrp.py checks the attributions against it. Nothing here is imported by
another plugin.
"""

from __future__ import annotations

from xai_core import hookimpl

from .attributor import LRP, pixel_bounds
from .composites import COMPOSITES
from .rules import RULES

__all__ = ["COMPOSITES", "LRP", "RULES", "pixel_bounds"]


@hookimpl
def register_attributors(register):
    register(LRP)
