"""Data-parallel training (DDP, gloo on CPU): 2 processes match a single process, and
`torchrun -m nmt.train` runs end to end."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose, tiny_overrides

pytestmark = pytest.mark.slow  # end-to-end runs in subprocesses

STEPS = 5
WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(tmp: Path, guided: bool = False) -> list[str]:
    return tiny_overrides(
        tmp,
        **{
            "trainer.device": "cpu",
            "trainer.threads": "1",
            "trainer.max_tokens": "300",  # several batches per epoch, so every rank gets STEPS
            "trainer.num_heatmaps": "0",
            "trainer.guided_alignment.weight": "0.5" if guided else "0.0",
        },
    )


def _shards(trainer, world: int) -> list[list]:
    """The first STEPS batches of every rank, as the trainer shards epoch 0."""
    from nmt.data.batching import shard_batches

    batches = trainer.sampler.batches(0)
    shards = [shard_batches(batches, r, world)[:STEPS] for r in range(world)]
    assert all(len(s) == STEPS for s in shards), "tiny task too small for the test"
    return shards


def _collate(trainer, idx):
    from nmt.data.batching import collate

    train = trainer.data.train
    return collate([train.src[i] for i in idx], [train.tgt[i] for i in idx], idx)


def _flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


def _worker(rank: int, world: int, port: int, tmp: str, guided: bool) -> None:
    """One DDP rank: the project's Trainer (it wraps the model in DDP) and its train_step."""
    import torch.distributed as dist

    from nmt.config import to_dataclass
    from nmt.trainer import Trainer

    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        cfg = to_dataclass(compose(_overrides(Path(tmp), guided)))
        trainer = Trainer(cfg, Path(tmp) / "run", rank, world)
        assert (trainer.guide is not None) == guided
        assert isinstance(trainer.ddp_model, torch.nn.parallel.DistributedDataParallel)
        losses = [
            trainer.train_step(_collate(trainer, idx)) for idx in _shards(trainer, world)[rank]
        ]
        out = [None] * world
        dist.all_gather_object(out, {"losses": losses, "params": _flat_params(trainer.model)})
        if rank == 0:
            torch.save(out, Path(tmp) / "ddp.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("guided", [False, True], ids=["plain", "guided"])
def test_ddp_matches_single_process(tmp_path, guided, monkeypatch):
    """2 gloo ranks: identical parameters on both, and the same losses and parameters as one
    process that takes the same global batches (the token mean over the global batch: each rank
    scales its summed loss by world_size / global tokens before DDP averages the gradients).
    Guided: the same with the guided alignment loss, the links aligned once (as rank 0 does
    first) by a deterministic stand-in for eflomal and found in the cache by every rank."""
    import torch.multiprocessing as mp

    from nmt.config import to_dataclass
    from nmt.data import prepare_data
    from nmt.data.guided import training_links
    from nmt.trainer import Trainer

    cfg = to_dataclass(compose(_overrides(tmp_path, guided)))
    # encode once (as rank 0 does first in the trainer); every rank reuses run/data/
    logger = logging.getLogger("test")
    data = prepare_data(cfg.data, tmp_path / "run", None, cfg.seed, logger)
    if guided:
        from conftest import ReversalAligner

        monkeypatch.setitem(sys.modules, "eflomal", ReversalAligner.module())
        method = cfg.trainer.guided_alignment.symmetrise
        folder = Path(data.stats["train_dir"]).parent
        training_links(data.train.src, data.train.tgt, data.tokenizer, folder, method, logger)
    mp.start_processes(
        _worker,
        args=(WORLD, free_port(), str(tmp_path), guided),
        nprocs=WORLD,
        start_method="spawn",
    )
    ranks = torch.load(tmp_path / "ddp.pt", weights_only=False)
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])  # DDP keeps replicas identical

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the kernels the ranks ran
    try:
        ref = Trainer(cfg, tmp_path / "run", 0, 1)
        shards = _shards(ref, WORLD)
        t = cfg.trainer
        for step in range(STEPS):
            ref.model.train()
            ref.optimizer.zero_grad(set_to_none=True)
            batches = [_collate(ref, shards[r][step]) for r in range(WORLD)]
            terms = [ref.loss_on(b, t.label_smoothing, guide=ref.guide) for b in batches]
            per_rank = [
                {
                    k: float(v.detach()) / b.n_tgt_tokens
                    for k, v in x._asdict().items()
                    if v is not None
                }
                for x, b in zip(terms, batches)
            ]
            total = sum(x.total for x in terms)
            (total / sum(b.n_tgt_tokens for b in batches)).backward()  # global token mean
            torch.nn.utils.clip_grad_norm_(ref.model.parameters(), t.clip_grad_norm)
            ref.optimizer.step()
            if t.schedule != "plateau":
                ref.scheduler.step()
            for r in range(WORLD):
                got, want, close = ranks[r]["losses"][step], per_rank[r], {"rel": 1e-4, "abs": 1e-5}
                assert got["loss"] == pytest.approx(want["cross_entropy"], **close), (step, r)
                assert ("guided_loss" in got) == guided, (step, r)
                if guided:
                    assert got["guided_loss"] == pytest.approx(want["guided"], **close), (step, r)
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(ranks[0]["params"], _flat_params(ref.model), rtol=1e-4, atol=1e-5)


TRANSFORMER = {
    "model": "transformer",
    "model.d_model": "32",
    "model.ff_size": "64",
    "model.heads": "2",
    "model.enc_layers": "1",
    "model.dec_layers": "1",
}


@pytest.mark.parametrize("model", ["rnn", "transformer"])
def test_torchrun_end_to_end(tmp_path, model):
    """`torchrun --standalone --nproc_per_node 2 -m nmt.train ...`: trains, validates and tests."""
    run_dir = tmp_path / "run"
    extra = TRANSFORMER if model == "transformer" else {}
    overrides = tiny_overrides(
        tmp_path,
        **{
            "trainer.device": "cpu",
            "trainer.threads": "1",
            "trainer.max_tokens": "300",
            "trainer.num_heatmaps": "0",
            "trainer.max_steps": "6",
            "trainer.validate_every": "3",
            **extra,
        },
    ) + [f"hydra.run.dir={run_dir}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [*cmd, "-m", "nmt.train", *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 6 and "test_bleu" in metrics
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    steps = [json.loads(line)["step"] for line in (run_dir / "progress.jsonl").open()]
    assert steps == list(range(1, 7))  # only rank 0 logs: every step once
