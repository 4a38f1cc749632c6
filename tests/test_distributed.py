"""Data-parallel training: N gloo processes on CPU follow the 1-process loss curve; bad worlds are refused."""

import os
import socket
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from sparsing_lib import distributed
from sparsing_lib.distributed import World
from sparsing_lib.models import TINY, build_model
from sparsing_lib.train import train

sys.path.insert(0, str(Path(__file__).parent))
from toy import VOCAB, corpus, small_cfg  # noqa: E402

# lr 0.003: at 0.01 this toy is chaotic enough that rounding differences grow to 1e-2 within 20 steps
STEPS = dict(tokens=20 * 8 * 32, n_checkpoints=3, lr=0.003)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, size: int, port: int, out: str) -> None:
    os.environ |= dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size))
    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    world, device = distributed.start("cpu")
    try:
        model = build_model(TINY, "relu", VOCAB)
        train(model, corpus(), corpus(5000, 1), small_cfg(**STEPS), out_dir=Path(out), progress=False, world=world)
    finally:
        distributed.stop(world)


def test_two_gloo_processes_follow_the_one_process_loss_curve(tmp_path):
    torch.set_num_threads(1)
    train(build_model(TINY, "relu", VOCAB), corpus(), corpus(5000, 1), small_cfg(**STEPS), out_dir=tmp_path / "one")
    mp.spawn(_rank, args=(2, free_port(), str(tmp_path / "two")), nprocs=2)
    one, two = (pd.read_csv(tmp_path / d / "metrics.csv") for d in ("one", "two"))
    assert list(one["step"]) == list(two["step"]) and len(one) >= 4
    assert two["train_loss"].to_numpy() == pytest.approx(one["train_loss"].to_numpy(), rel=1e-5)
    assert two["val_loss"].dropna().to_numpy() == pytest.approx(one["val_loss"].dropna().to_numpy(), rel=1e-5)
    assert two["grad_norm"].to_numpy() == pytest.approx(one["grad_norm"].to_numpy(), rel=1e-4)


def test_each_rank_takes_an_equal_contiguous_share_of_the_global_batch():
    assert [distributed.shard(8, World(r, 4, r)) for r in range(4)] == [
        slice(0, 2),
        slice(2, 4),
        slice(4, 6),
        slice(6, 8),
    ]
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        distributed.shard(8, World(0, 3, 0))


def test_more_processes_than_visible_gpus_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="started 2 processes on this machine but only 1 GPU"):
        distributed.start("cuda")


def test_resuming_under_another_number_of_processes_is_refused(tmp_path):
    cfg = small_cfg(**STEPS)
    args = (corpus(), corpus(5000, 1), cfg)
    s = train(build_model(TINY, "relu", VOCAB), *args, ckpt_dir=tmp_path, time_limit=0.0, progress=False)
    assert s["status"] == "paused" and torch.load(tmp_path / "state.pt", weights_only=False)["world_size"] == 1
    with pytest.raises(ValueError, match="saved by a run on 1 process"):
        train(build_model(TINY, "relu", VOCAB), *args, ckpt_dir=tmp_path, progress=False, world=World(0, 2, 0))


def test_micro_batches_accumulate_the_same_gradient_as_one_pass():
    import copy

    from sparsing_lib.train import lm_loss, make_optimizer, train_step

    cfg = small_cfg(**STEPS)
    a = build_model(TINY, "relu", VOCAB)
    b = copy.deepcopy(a)
    x = torch.from_numpy(corpus()[: 8 * 33].astype("int64")).view(8, 33)
    la, ga = train_step(a, lm_loss, make_optimizer(a, cfg, False), x[:, :-1], x[:, 1:], cfg.grad_clip)
    lb, gb = train_step(b, lm_loss, make_optimizer(b, cfg, False), x[:, :-1], x[:, 1:], cfg.grad_clip, chunks=4)
    assert lb.item() == pytest.approx(la.item(), rel=1e-5) and gb.item() == pytest.approx(ga.item(), rel=1e-5)
    # Adam's first step is about lr * sign(gradient), so a gradient at rounding level may flip an element by up to
    # 2 lr; all but a few elements agree to 1e-6
    diff = torch.cat([(pa - pb).abs().flatten() for pa, pb in zip(a.parameters(), b.parameters())])
    assert (diff > 1e-6).float().mean() < 1e-3 and diff.max() <= 2 * cfg.lr + 1e-6
