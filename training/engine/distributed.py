"""Training on several processes: PyTorch DistributedDataParallel under `torchrun`.

`fit` reads torchrun's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...);
without it, the world is one process and nothing here does any work. Backend NCCL on CUDA,
gloo on CPU. The scheme, kept so that a world of N trains the same model as a world of 1:

- Every rank draws the same global batch of `batch_size` windows (the sampling generator is
  seeded alike on all ranks) and trains on its slice, ``rank::world_size``; DDP averages the
  gradients, so one step is one step of the whole batch.
- Augmentation draws from a generator seeded per rank: ranks must not augment alike.
- Validation tracks are split across ranks and their probabilities gathered, so every rank
  computes the same metrics (and takes the same early-stopping decision).
- Only rank 0 writes files (checkpoints, history, plots, the exported model).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from training.errors import TrainingError

T = TypeVar("T")


class DistributedError(TrainingError):
    """The distributed environment is unusable (a bad torchrun variable, NCCL without CUDA)."""


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the training processes.

    rank: 0..size-1 over all machines; local_rank: the index on this machine (its GPU);
    backend: "nccl", "gloo", or "" for a single process.
    """

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of `items`: every `size`-th one from `rank` (sizes differ by at most 1)."""
        return list(items[self.rank :: self.size])


def world_from_env(env: dict[str, str] | None = None) -> World:
    """The world torchrun describes in `env` (default: ``os.environ``); one process without it."""
    env = dict(os.environ if env is None else env)
    if "WORLD_SIZE" not in env:
        return World()
    try:
        size, rank = int(env["WORLD_SIZE"]), int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise DistributedError(f"torchrun environment: {exc}") from None
    if not 0 <= rank < size:
        raise DistributedError(f"torchrun environment: RANK {rank} outside a world of {size}")
    return World(rank, local_rank, size)


@contextlib.contextmanager
def process_group(world: World, device_type: str, timeout_s: float = 1800.0) -> Iterator[World]:
    """Join the process group for the run's length (no-op for one process); yields the world
    with its backend set. `device_type`: "cuda" or "cpu" (the training device)."""
    if not world.distributed:
        yield world
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise DistributedError("NCCL needs CUDA, and torch sees no CUDA device")
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    try:
        yield dataclasses.replace(world, backend=backend)
        # Leave together (normal exit only: after an error a peer may never come). Rank 0 still
        # writes the plots and the model when the others are done; a rank that tore gloo down
        # meanwhile was seen to abort ("terminate called without an active exception", SIGABRT).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def training_device(world: World, device: torch.device) -> torch.device:
    """On CUDA, each process trains on the GPU of its local rank."""
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


def mean_over_world(value: float, world: World, device: torch.device) -> float:
    """The mean of `value` over all ranks (the value itself in a world of one)."""
    if not world.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world.size


def gather_shards(shard: list[Any], world: World) -> list[Any]:
    """Undo `World.shard`: every rank's list, interleaved back into the original order."""
    if not world.distributed:
        return shard
    parts: list[list[Any]] = [[] for _ in range(world.size)]
    dist.all_gather_object(parts, shard)
    merged: list[Any] = []
    for i in range(max(len(p) for p in parts)):
        merged.extend(p[i] for p in parts if i < len(p))
    return merged


def gather_states(state: T, world: World) -> list[T]:
    """Every rank's `state` (e.g. its random generators), in rank order: ``[state]`` for one process."""
    if not world.distributed:
        return [state]
    states: list[Any] = [None] * world.size
    dist.all_gather_object(states, state)
    return states


def barrier(world: World) -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read)."""
    if world.distributed:
        dist.barrier()
