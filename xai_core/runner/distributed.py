"""Running one config over many processes with PyTorch's own launcher.

Under ``torchrun --nproc-per-node N xai run CONFIG`` (or across nodes), every process runs the
same command: each takes the inputs ``rank, rank + world, ...``, writes its own items (file names
never collide: they are keyed by image), and rank 0 merges ``results.json``, the figures and the
metric tables after a barrier. The backend is gloo on CPU and NCCL on GPUs; ``device: auto``
gives each process the GPU of its local rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistContext"]


@dataclass
class DistContext:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "cpu") -> DistContext:
        """Read torchrun's environment; join the process group if there is more than one rank."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()

        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        initialised = False
        if not dist.is_initialized():
            backend = "nccl" if device != "cpu" and torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend, timeout=timedelta(hours=2))
            initialised = True
        return cls(rank=rank, world=world, local_rank=local_rank, initialised_here=initialised)

    def shard(self, items: list[Any]) -> list[Any]:
        return items[self.rank :: self.world]

    def barrier(self) -> None:
        if self.enabled:
            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                dist.barrier()

    def sum(self, value: int) -> int:
        """Sum an integer over all ranks (e.g. the number of failed items)."""
        if not self.enabled:
            return value

        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        tensor = torch.tensor([value], dtype=torch.long, device=device)
        dist.all_reduce(tensor)
        return int(tensor.item())

    def close(self) -> None:
        if self.initialised_here:
            dist.destroy_process_group()
