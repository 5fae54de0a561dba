"""Trainer: phases, target sync, evaluation records, results.json, checkpoint/resume after a kill."""

from __future__ import annotations

import json

import pytest
import torch

from hygen.rundir import RunDir
from hygen.runner import epsilon_greedy
from hygen.trainer import Phase, Trainer, TrainerError

torch.set_num_threads(1)  # tiny networks on a shared 2-core CPU: extra threads only spin


class RandomController:
    def initial_state(self, map_name, num_envs):
        return {}

    def act(self, map_name, obs, avail, agent_state, epsilon, generator):
        return epsilon_greedy(torch.zeros(avail.shape), avail, 1.0, generator), {}


class Killed(RuntimeError):
    pass


class FakeLearner:
    """Records what the trainer asks of it; can 'die' at a given step."""

    def __init__(self, maps, device="cpu", die_at=None):
        self.maps, self.die_at = maps, die_at
        self.w = torch.zeros(1)  # stands for the parameters: counts updates
        self.calls: list[tuple[int, str, dict]] = []
        self.target_syncs: list[int] = []

    def controller(self):
        return RandomController()

    def update(self, batches, step, phase):
        if step == self.die_at:
            raise Killed(f"killed at step {step}")
        assert set(batches) == set(self.maps)
        self.calls.append((step, phase, {m: len(b) for m, b in batches.items()}))
        self.w += 1
        return {"loss": 1.0 / (1 + step)}

    def update_targets(self):
        self.target_syncs.append(len(self.calls))

    def state_dict(self):
        return {"w": self.w.clone()}

    def load_state_dict(self, sd):
        self.w = sd["w"].clone()


def make_trainer(run_dir, learner, phases, **kw):
    args = {"run_dir": RunDir(run_dir), "seed": 1, "device": "cpu", "learner": learner, "source_maps": ["3m"],
                "eval_maps": ["3m", "4m"], "phases": phases, "num_envs": 2, "batch_size": 4, "buffer_size": 40,
                "target_update_every": 5, "eval_every": 10, "eval_episodes": 4, "checkpoint_every": 10, "log_every": 5}
    args.update(kw)
    return Trainer(**args)


def test_resume_after_kill_continues_from_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    first = FakeLearner(("3m",), die_at=25)
    with pytest.raises(Killed):
        make_trainer(tmp_path, first, [Phase("online", 30)]).run()
    ckpts = RunDir(tmp_path).checkpoints()
    assert [p.name for p in ckpts] == ["ckpt_00000010.pt", "ckpt_00000020.pt"]
    partial = json.loads((tmp_path / "results.json").read_text())  # written at each evaluation
    assert [e["step"] for e in partial["evals"]] == [0, 10, 20] and partial["done"] is False

    second = FakeLearner(("3m",))
    trainer = make_trainer(tmp_path, second, [Phase("online", 30)])
    res = trainer.run()
    assert second.calls[0][0] == 20 and second.calls[-1][0] == 29  # continues at the checkpoint step
    assert float(second.w) == 30.0  # 20 restored + 10 new updates
    assert len(trainer.buffers["3m"]) <= 40 and trainer.buffers["3m"].episodes_inserted > 20
    assert res["done"] and res["steps"] == 30
    assert [p.name for p in RunDir(tmp_path).checkpoints()] == ["ckpt_00000030.pt"]  # a finished run keeps one
    assert [e["step"] for e in res["evals"]] == [0, 10, 20, 30]
    assert set(res["final"]["win_rate"]) == {"3m", "4m"}
    assert res["final"]["win_rate_unseen_mean"] == res["final"]["win_rate"]["4m"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["evals"] == res["evals"] and saved["env_steps"] == res["env_steps"] > 0
    assert res["env_steps"] >= res["evals"][-1]["env_steps"] > res["evals"][1]["env_steps"]
    assert list(tmp_path.glob("events.out.tfevents.*")), "TensorBoard events written"
    # TensorBoard shows each evaluation once: the killed run's events after its checkpoint are
    # purged, the one at the checkpoint step is kept (the resumed run does not log it again)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [e.step for e in acc.Scalars("eval/4m/win_rate")] == [0, 10, 20, 30]
    assert [e.step for e in acc.Scalars("train/loss")] == [5, 10, 15, 20, 25, 30]
    # a finished run re-run does nothing more
    third = FakeLearner(("3m",))
    make_trainer(tmp_path, third, [Phase("online", 30)]).run()
    assert third.calls == [] and float(third.w) == 30.0


class FixedSampler:
    """Offline stand-in: returns a fixed batch, records the phase-local t it is asked for."""

    def __init__(self, batch):
        self.batch, self.ts = batch, []

    def sample(self, offline, online, batch_size, t, generator):
        self.ts.append(t)
        return self.batch

    def ratio(self, t):
        return 1.0


def test_phases_in_order_offline_phase_collects_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    from hygen.runner import Runner

    batch, _ = Runner("3m", num_envs=2).collect(RandomController(), n_episodes=4)
    sampler = FixedSampler(batch)
    learner = FakeLearner(("3m",))
    tr = make_trainer(tmp_path, learner, [Phase("skills", 7, sampler, False), Phase("hybrid", 6)],
                      eval_every=100, checkpoint_every=100)
    res = tr.run()
    phases = [c[1] for c in learner.calls]
    assert phases == ["skills"] * 7 + ["hybrid"] * 6
    assert [c[0] for c in learner.calls] == list(range(13))
    assert sampler.ts == list(range(7))  # the sampler sees the step within its phase
    assert res["evals"][0]["env_steps"] == 0  # phase 1 never touched the environment
    assert learner.target_syncs == [5, 10]
    assert res["phases"][0] == {"name": "skills", "steps": 7, "sampler": "FixedSampler", "collect_online": False}


def test_a_phase_passes_its_objective_not_its_display_name(tmp_path, monkeypatch):
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    learner = FakeLearner(("3m",))
    phases = [Phase("hybrid, fixed 50 %", 2, objective="policy"), Phase("policy", 1)]
    res = make_trainer(tmp_path, learner, phases, eval_every=100, checkpoint_every=100).run()
    assert [c[1] for c in learner.calls] == ["policy", "policy", "policy"]
    assert [p["name"] for p in res["phases"]] == ["hybrid, fixed 50 %", "policy"]


def test_bad_configuration_errors(tmp_path):
    with pytest.raises(TrainerError, match=r"Trainer.source_maps: unknown map '3mm' \(did you mean '3m'\?\)"):
        make_trainer(tmp_path, FakeLearner(("3m",)), None, source_maps=["3mm"])
    with pytest.raises(TrainerError, match="Trainer.eval_maps: unknown map '5mm'"):
        make_trainer(tmp_path, FakeLearner(("3m",)), None, eval_maps=["3m", "5mm"])
    # a replay buffer that can never hold learning_starts episodes would wait forever
    with pytest.raises(TrainerError, match=r"Trainer.buffer_size \(2\) is smaller than Trainer.learning_starts "
                                           r"\(4 = batch_size\)"):
        make_trainer(tmp_path, FakeLearner(("3m",)), None, buffer_size=2)
    with pytest.raises(TrainerError, match=r"learning_starts \(50\)"):
        make_trainer(tmp_path, FakeLearner(("3m",)), None, learning_starts=50)
    make_trainer(tmp_path, FakeLearner(("3m",)), [Phase("offline", 3, None, False)], buffer_size=2)  # no online: fine
    with pytest.raises(TrainerError, match="eval_every"):
        make_trainer(tmp_path, FakeLearner(("3m",)), None, eval_every=0)
    with pytest.raises(TrainerError, match="Learner contract"):
        make_trainer(tmp_path, object(), None)
    with pytest.raises(TrainerError, match="data_quality"):
        make_trainer(tmp_path, FakeLearner(("3m",)), None, data_root=str(tmp_path))
    with pytest.raises(ValueError, match="hygen collect"):
        make_trainer(tmp_path, FakeLearner(("3m",)), None, data_root=str(tmp_path), data_quality="expert")


def test_qmix_gin_config_trains_through_the_cli(tmp_path):
    from hygen.cli import main

    run = tmp_path / "qmix"
    argv = ["train", "--gin_file", "qmix", "--run_dir", str(run), "--seed", "3", "--device", "cpu",
            "--gin_param", "online/Phase.steps = 6", "--gin_param", "Trainer.batch_size = 4",
            "--gin_param", "Trainer.num_envs = 2", "--gin_param", "Trainer.eval_every = 3",
            "--gin_param", "Trainer.eval_episodes = 2", "--gin_param", "Trainer.checkpoint_every = 3"]
    assert main(argv) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["method"] == "QMIXLearner" and res["done"] and res["steps"] == 6
    assert [e["step"] for e in res["evals"]] == [0, 3, 6]
    assert "QMIXLearner.lr = 0.0005" in (run / "operative_config.gin").read_text()
    assert main(["train", "--gin_file", "qmix", "--run_dir", str(tmp_path / "bad"),
                 "--gin_param", "SOURCE_MAPS = ['3m', '5m']"]) == 2  # QMIX is single-task: clear error


def test_stop_win_rate_ends_the_run_and_a_rerun_does_not_train_on(tmp_path, monkeypatch):
    """An evaluation at or above Trainer.stop_win_rate ends training early, except the untrained one."""
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    scripted = {0: 1.0, 10: 0.5, 20: 0.96}  # step -> mean win rate the fake evaluation reports

    def fake_evaluate(self):
        wr = scripted.get(self.step, 0.0)
        return {m: {"win_rate": wr, "return_mean": 0.0, "episode_length_mean": 1.0} for m in self.eval_maps}

    monkeypatch.setattr(Trainer, "evaluate", fake_evaluate)
    learner = FakeLearner(("3m",))
    res = make_trainer(tmp_path, learner, [Phase("online", 50)], stop_win_rate=0.95).run()
    assert res["steps"] == 20 and len(learner.calls) == 20
    assert [e["step"] for e in res["evals"]] == [0, 10, 20]
    assert res["done"] is True and res["stopped_at_win_rate"] == 0.95
    again = FakeLearner(("3m",))
    res2 = make_trainer(tmp_path, again, [Phase("online", 50)], stop_win_rate=0.95).run()
    assert again.calls == [] and res2["steps"] == 20  # resumed at the stop, nothing more to do
    with pytest.raises(TrainerError, match="stop_win_rate"):
        make_trainer(tmp_path / "bad", FakeLearner(("3m",)), [Phase("online", 5)], stop_win_rate=1.5)


class OtherLearner(FakeLearner):
    pass


def test_checkpoint_of_another_learner_is_refused_naming_both(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    from hygen.rundir import CheckpointError

    make_trainer(tmp_path, FakeLearner(("3m",)), [Phase("online", 10)]).run()
    with pytest.raises(CheckpointError, match=r"ckpt_00000010\.pt: written by FakeLearner, but this config builds "
                                              r"OtherLearner"):
        make_trainer(tmp_path, OtherLearner(("3m",)), [Phase("online", 20)]).restore()
    # an unreadable newest checkpoint: the one before is used, with a warning naming the skipped file
    with pytest.raises(Killed):  # continued to 30 and killed after its checkpoint at step 20
        make_trainer(tmp_path, FakeLearner(("3m",), die_at=25), [Phase("online", 30)]).run()
    (tmp_path / "checkpoints" / "ckpt_00000020.pt").write_bytes(b"truncated")
    tr = make_trainer(tmp_path, FakeLearner(("3m",)), [Phase("online", 30)])
    capsys.readouterr()
    assert tr.restore() and tr.step == 10
    err = capsys.readouterr().err
    assert "warning: skipped unreadable checkpoint" in err and "ckpt_00000020.pt" in err
    assert tr.run_dir.loaded_checkpoint.name == "ckpt_00000010.pt"
    assert tr.run_dir.purge_step == 11  # TensorBoard drops the killed run's events after step 10


def _without_wall_time(evals):
    return [{k: v for k, v in e.items() if k != "wall_time"} for e in evals]


@pytest.mark.parametrize("method", ["random", "qmix"])
def test_a_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch, method):
    """Episodes in flight, evaluation environments and RNGs are checkpointed: resuming changes nothing."""
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    from hygen.learners import QMIXLearner

    def learner(die_at=None):
        if method == "random":
            return FakeLearner(("3m",), die_at=die_at)
        torch.manual_seed(0)
        q = QMIXLearner(maps=("3m",))
        if die_at is not None:
            update = q.update

            def dying(batches, step, phase):
                if step == die_at:
                    raise Killed(f"killed at step {step}")
                return update(batches, step, phase)
            q.update = dying
        return q

    def trainer(path, lr):
        return make_trainer(path, lr, [Phase("online", 24)], eval_every=8, checkpoint_every=8,
                            learning_starts=2, batch_size=2, eval_maps=["3m", "4m"] if method == "random" else ["3m"])

    whole = trainer(tmp_path / "whole", learner()).run()
    with pytest.raises(Killed):
        trainer(tmp_path / "cut", learner(die_at=13)).run()  # 5 updates and their episodes lost
    resumed_trainer = trainer(tmp_path / "cut", learner())
    resumed = resumed_trainer.run()
    assert resumed["env_steps"] == whole["env_steps"] > 0
    assert _without_wall_time(resumed["evals"]) == _without_wall_time(whole["evals"])
    if method == "qmix":  # the same batches were drawn, so the same weights were learned
        done = torch.load(tmp_path / "whole" / "checkpoints" / "ckpt_00000024.pt", weights_only=False)
        for k, v in resumed_trainer.learner.state_dict()["agent"].items():
            assert torch.equal(v, done["learner"]["agent"][k]), k
