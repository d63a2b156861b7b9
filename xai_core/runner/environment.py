"""Where a run happens and how it is made repeatable: the device, the seeds, the versions.

Shared by the experiment runner and the ground-truth benchmark, so that both pick the device,
seed every generator and describe the environment in ``results.json`` the same way.
"""

from __future__ import annotations

import platform
import random
import sys
from typing import Any

import numpy as np
import torch

from xai_core.errors import XaiError
from xai_core.plugins.manager import loaded_plugins
from xai_core.version import __version__

__all__ = ["resolve_device", "environment", "seed_everything"]


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` is this rank's GPU when there is one, else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise XaiError(f"device {device!r} was asked for but CUDA is not available; use device=cpu")
    return torch.device(device)


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions and hardware, for ``results.json``."""
    # Imported for their versions only; a run has loaded them by now (timm takes ~2 s).
    import timm
    import torchvision

    env = {
        "xai_core": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "plugins": {p.name: p.distribution or "local" for p in loaded_plugins()},
    }
    if str(device).startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (before each method of a run)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
