"""Scalar loggers: scalars.csv beside TensorBoard, its resume purge, loggers bound in gin."""

import csv
import json
from typing import ClassVar

import gin
import pytest

from hygen.cli import main
from hygen.loggers import CSVLogger

TINY = ["train", "--gin_file", "qmix", "--device", "cpu", "--gin_param", "SOURCE_MAPS = ['3m']",
        "--gin_param", "online/Phase.steps = 4", "--gin_param", "Trainer.batch_size = 2",
        "--gin_param", "Trainer.num_envs = 2", "--gin_param", "Trainer.eval_episodes = 2",
        "--gin_param", "Trainer.eval_every = 2", "--gin_param", "Trainer.log_every = 1",
        "--gin_param", "Trainer.checkpoint_every = 2"]


@gin.configurable
class ListLogger:
    """Keeps every scalar it is given (a logger bound with loggers.extra)."""

    rows: ClassVar[list] = []

    def __init__(self, run_dir, purge_step=None):
        self.run_dir = run_dir

    def add_scalar(self, tag, value, step):
        ListLogger.rows.append((step, tag, value))

    def flush(self):
        pass

    def close(self):
        pass


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_and_a_bound_logger_get_what_tensorboard_gets(tmp_path):
    ListLogger.rows.clear()
    run = tmp_path / "run"
    assert main([*TINY, "--run_dir", str(run), "--gin_param", "loggers.extra = [@ListLogger]"]) == 0
    rows = _csv(run / "scalars.csv")
    results = json.loads((run / "results.json").read_text())
    for e in results["evals"]:  # every evaluation's win rate, at its step
        hit = [r for r in rows if r["tag"] == "eval/3m/win_rate" and int(r["step"]) == e["step"]]
        assert len(hit) == 1 and float(hit[0]["value"]) == pytest.approx(e["win_rate"]["3m"], abs=1e-6)
    assert any(r["tag"].startswith("train/") for r in rows)
    assert sorted((int(r["step"]), r["tag"]) for r in rows) == sorted((s, t) for s, t, _ in ListLogger.rows)


def test_csv_resume_drops_what_the_killed_run_wrote_after_its_checkpoint(tmp_path):
    lg = CSVLogger(tmp_path)
    for step in range(10):
        lg.add_scalar("train/loss", step / 10, step)
    lg.close()
    lg = CSVLogger(tmp_path, purge_step=5)  # resumed from the step-4 checkpoint
    lg.add_scalar("train/loss", 0.55, 5)
    lg.close()
    rows = _csv(tmp_path / "scalars.csv")
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4, 5]
    assert rows[-1]["value"] == "0.55"


def test_wandb_without_wandb_names_the_extra(tmp_path, capsys):
    try:
        import wandb  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("wandb is installed here")
    assert main([*TINY, "--run_dir", str(tmp_path / "w"), "--gin_param", "loggers.extra = [@WandbLogger]"]) == 2
    assert "pip install 'hygen[wandb]'" in capsys.readouterr().err
