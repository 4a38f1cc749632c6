"""Data-parallel training across the processes ``torchrun`` starts (one per GPU, gloo on CPU for tests).

``torchrun --nproc_per_node N -m sparsing_lib.run ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; ``start``
reads them and joins the process group. The global batch stays what the recipe says: every rank takes
its own contiguous share of each global batch (``shard``), so a run on N processes sees the same tokens
at every step as on one, and the averaged gradients are those of the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# rank 0 probes a finished run while the other ranks wait at a barrier; the default timeout is too short
PROBE_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 alone writes metrics, checkpoints, resume state and the run folder."""
        return self.rank == 0


def world_from_env() -> World:
    """The world ``torchrun`` describes in the environment; one process when it is absent."""
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def start(device: str) -> tuple[World, torch.device]:
    """Join the process group (NCCL on GPUs, gloo on CPU) and pick this rank's device. Refuses, with one
    message, more processes on this machine than it has visible GPUs: two ranks on one GPU would each train
    at half speed and the run would look twice as slow as it is."""
    world = world_from_env()
    if world.size == 1:
        return world, torch.device(device)
    if device.startswith("cuda"):
        visible = torch.cuda.device_count()
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world.size))
        if local > visible:
            raise ValueError(
                f"torchrun started {local} processes on this machine but only {visible} GPU(s) are visible; "
                f"use --nproc_per_node {visible} or fewer (one process per GPU)"
            )
        torch.cuda.set_device(world.local_rank)
        dev, backend = torch.device("cuda", world.local_rank), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=PROBE_TIMEOUT)
    return world, dev


def stop(world: World) -> None:
    """Leave the process group (the end of a torchrun job)."""
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def shard(batch_size: int, world: World) -> slice:
    """This rank's rows of a global batch of ``batch_size`` sequences: equal contiguous shares, so the mean of
    the ranks' mean losses is the mean loss of the whole batch."""
    if batch_size % world.size:
        raise ValueError(f"a global batch of {batch_size} sequences does not split evenly over {world.size} processes")
    per = batch_size // world.size
    return slice(world.rank * per, (world.rank + 1) * per)


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """``model`` under DistributedDataParallel when there are several ranks, else ``model`` itself."""
    if world.size == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def reduce_log(loss_sum: torch.Tensor, gnorm_sum: torch.Tensor, pause: bool, world: World) -> tuple[float, float, bool]:
    """The mean over ranks of the summed losses and gradient norms since the last log, and rank 0's decision
    to pause (its clock decides, so that every rank stops at the same step)."""
    if world.size == 1:
        return loss_sum.item(), gnorm_sum.item(), pause
    flag = float(pause and world.main)
    t = torch.stack([loss_sum.float(), gnorm_sum.float(), torch.tensor(flag, device=loss_sum.device)])
    dist.all_reduce(t)
    return t[0].item() / world.size, t[1].item() / world.size, t[2].item() > 0


def barrier(world: World) -> None:
    """Wait for every rank (e.g. while rank 0 probes a finished run)."""
    if world.size > 1:
        dist.barrier()
