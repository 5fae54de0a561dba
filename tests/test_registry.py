"""Every method config x every task set trains a few steps and evaluates.

The lists come from the configs and the learner registry, not from this file: a new method is
a new ``configs/methods/<name>.gin`` that binds ``Trainer.learner`` (directly or through an
include) and names its run (``# run: runs/<run>.gin``), and is tested here with that run without
a line added; a new learner class must be used by some method config.
"""

from __future__ import annotations

import json
from dataclasses import replace

import gin
import pytest
from config_layout import closure, files_of, learner_of, methods, run_of

import hygen.learners
from hygen import config
from hygen.buffers import write_episodes
from hygen.buffers.synthetic import random_episodes
from hygen.config import CONFIG_DIR
from hygen.envs.maps import TASK_SETS
from hygen.learners.base import LearnerBase
from hygen.rundir import RunDir
from hygen.trainer import Trainer


def task_set_gin(name: str) -> str:
    return f"tasksets/{name.replace('-', '_')}"


METHODS = methods()
LEARNERS = {name: cls for name in hygen.learners.__all__
            if isinstance(cls := getattr(hygen.learners, name), type) and issubclass(cls, LearnerBase)}


def test_the_registry_is_not_empty_and_every_learner_has_a_method():
    assert {"hygen", "odis", "bc_t", "bc_r", "updet_m", "updet_l", "hissd", "qmix"} <= set(METHODS)
    used = {learner_of(m) for m in METHODS}
    assert set(LEARNERS) <= used, f"learners without a method config: {sorted(set(LEARNERS) - used)}"


SCALES = sorted(p.stem for p in (CONFIG_DIR / "scales").glob("*.gin"))


@pytest.mark.parametrize("scale", SCALES)
def test_a_scale_gives_every_multi_task_method_hygen_s_budget(scale):
    """One definition of a scale: the one-phase baselines train as many steps as HyGen's two phases."""
    budgets = {}
    for method in METHODS:
        if not LEARNERS[learner_of(method)].multi_task:
            continue  # QMIX has its own online budget
        config.reset()
        config.parse_config([*files_of(method), "tasksets/marine_hard", "data/medium", f"scales/{scale}"])
        budgets[method] = sum(ref.scoped_configurable_fn().steps for ref in gin.query_parameter("Trainer.phases"))
    assert len(set(budgets.values())) == 1, budgets
    gin.clear_config()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for ts in TASK_SETS.values():
        for m in ts.source:
            write_episodes(root / m / "medium" / "part_0.h5", random_episodes(m, 6, seed=1))
    return root


@pytest.mark.parametrize("task_set", sorted(TASK_SETS))
@pytest.mark.parametrize("method", METHODS)
def test_method_trains_and_evaluates_on_task_set(method, task_set, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    ts = TASK_SETS[task_set]
    learner_cls = LEARNERS[learner_of(method)]
    # multi-task methods: every source map, evaluated on one source and one unseen map;
    # single-task ones (QMIX) train and act on the task set's first source map only
    sources = list(ts.source) if learner_cls.multi_task else [ts.source[0]]
    evals = [ts.source[0], ts.unseen[0]] if learner_cls.multi_task else [ts.source[0]]
    config.reset()
    offline = "Trainer.data_root" in closure(f"{run_of(method)}.gin")  # online runs read no data
    data = [f"Trainer.data_root = '{data_root}'"] if offline else []
    config.parse_config([*files_of(method), task_set_gin(task_set), "data/medium"], [*data,
        f"Trainer.source_maps = {sources!r}", f"Trainer.eval_maps = {evals!r}",
        "Trainer.batch_size = 2", "Trainer.offline_episodes = 6", "Trainer.num_envs = 1",
        "Trainer.episodes_per_step = 1", "Trainer.eval_episodes = 1", "Trainer.eval_every = 1000",
        "Trainer.checkpoint_every = 1000", "Trainer.diagnostics = None", "Trainer.learning_starts = 2",
        "Trainer.buffer_size = 8",
    ], unused_macros_ok=True)
    phases = [replace(ref.scoped_configurable_fn(), steps=2) for ref in gin.query_parameter("Trainer.phases")]
    trainer = Trainer(run_dir=RunDir(tmp_path / "run"), seed=0, device="cpu", phases=phases)
    res = trainer.run()
    assert isinstance(trainer.learner, learner_cls)
    assert res["done"] and res["steps"] == 2 * len(trainer.phases)
    assert set(res["final"]["win_rate"]) == set(evals)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["steps"] == res["steps"]
    gin.clear_config()
