"""Whether a hub is reachable: loaders fail within seconds offline, naming the offline
alternatives."""

from __future__ import annotations

import os
import socket
import threading

from xai_core.errors import ModelLoadError


def _can_reach(host: str, timeout: float) -> bool:
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def reachable(host: str, timeout: float = 3.0) -> bool:
    """Whether ``host`` answers on port 443 within ``timeout`` seconds (never with
    ``XAI_CORE_OFFLINE=1``)."""
    if os.environ.get("XAI_CORE_OFFLINE", "").strip() in ("1", "true", "yes"):
        return False
    return _can_reach(host, timeout)


def require_network(host: str, what: str, timeout: float = 3.0) -> None:
    """Fail within ``timeout`` seconds, naming offline alternatives, if ``host`` is unreachable."""
    if not reachable(host, timeout):
        raise ModelLoadError(
            f"cannot download {what}: {host} is not reachable (offline?). Alternatives: the "
            "built-in offline model `efficientnet_lite0`; `checkpoint=PATH` to load local "
            "weights; or `pretrained=false` for random weights (tests, speed checks)"
        )
