"""Built-in synthesizers: images made by gradient steps on the input pixels.

- ``fooling``: a photo nudged until the model calls it a chosen class (Szegedy et al. 2014,
  "Intriguing properties of neural networks"), still fooling after an 8-bit PNG round trip.
- ``fgsm`` and ``pgd``: adversarial examples (Goodfellow et al. 2015; Madry et al. 2018), targeted
  or untargeted, L-infinity or L2, with an optional seeded random start.
- ``class_visualization``: an image that maximizes a class score, from noise (Simonyan et al.
  2014; Yosinski et al. 2015), with jitter, periodic blur and clamping.

- ``feature_visualization``: Lucid-style feature visualization (:mod:`.feature_visualization`).

Modules: :mod:`.common` (records, quantization, the from-noise base), :mod:`.adversarial` (fooling,
FGSM, PGD), :mod:`.class_visualization`, :mod:`.feature_visualization`.

Every budget and step size is in pixel space ``[0, 1]``; the model's own mean and std are applied
inside (``context.handle.normalize``), so ``eps=4/255`` means four grey levels for every model.
Each synthesizer returns one :class:`~xai_core.contracts.synthesizer.SynthesisRecord` per image,
made by :func:`image_records`. Parameter ranges are declared on the ``Params`` fields
(:mod:`xai_core.contracts.params`), so configs are checked before any model loads.
"""

from __future__ import annotations

from xai_core import hookimpl

from .adversarial import FGSM, PGD, Fooling
from .class_visualization import ClassVisualization
from .feature_visualization import FeatureVisualization


@hookimpl
def register_synthesizers(register):
    register(Fooling)
    register(FGSM)
    register(PGD)
    register(ClassVisualization)
    register(FeatureVisualization)
