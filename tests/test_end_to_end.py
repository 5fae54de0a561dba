"""HyGen through the command line: train (two phases, hybrid data), resume, evaluate, bad checkpoints."""

import json

import pytest

from hygen.buffers import write_episodes
from hygen.buffers.synthetic import random_episodes
from hygen.cli import main

MAPS = ["3m", "4m"]


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    write_episodes(root / "3m" / "medium" / "part_0.h5", random_episodes("3m", 12, seed=1))
    return root


def train_args(data_root, run_dir, *extra):
    return ["train", "--gin_file", "hygen", "--gin_file", "data/medium", "--run_dir", str(run_dir),
            "--device", "cpu",
            "--gin_param", "SOURCE_MAPS = ['3m']", "--gin_param", f"EVAL_MAPS = {MAPS!r}",
            "--gin_param", f"DATA_ROOT = '{data_root}'",
            "--gin_param", "SKILL_STEPS = 3", "--gin_param", "POLICY_STEPS = 3",
            "--gin_param", "Trainer.batch_size = 4", "--gin_param", "Trainer.eval_episodes = 2",
            "--gin_param", "Trainer.eval_every = 100", "--gin_param", "Trainer.checkpoint_every = 2",
            "--gin_param", "Trainer.offline_episodes = 12", *extra]


def test_train_resume_evaluate(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(data_root, run)) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["done"] and res["steps"] == 6
    assert [p["name"] for p in res["phases"]] == ["skill_discovery", "policy"]
    assert set(res["final"]["win_rate"]) == set(MAPS)
    assert res["env_steps"] > 0  # phase 2 interacted with the simulator
    for f in ("config.gin", "operative_config.gin", "meta.json"):
        assert (run / f).is_file(), f
    operative = (run / "operative_config.gin").read_text()
    assert "HyGenLearner.num_skills = %NUM_SKILLS" in operative and "NUM_SKILLS = 4" in operative

    # Rerunning a finished run resumes at its end: nothing is trained again.
    assert main(["train", "--run_dir", str(run), "--device", "cpu"]) == 0
    assert json.loads((run / "results.json").read_text())["steps"] == 6

    capsys.readouterr()
    table_md = tmp_path / "t.md"
    assert main(["evaluate", str(run), "--episodes", "2", "--device", "cpu", "--markdown", str(table_md),
                 "--plot", str(tmp_path / "c.svg")]) == 0
    assert "<polyline" in (tmp_path / "c.svg").read_text() and (run / "curves.svg").is_file()
    out = capsys.readouterr().out
    assert "zero-shot win rate" in out and "unseen" in out and "4m" in out
    assert "| source | 3m |" in table_md.read_text()

    # each skill alone: one extra column per skill (NUM_SKILLS = 4)
    assert main(["evaluate", str(run), "--episodes", "2", "--device", "cpu", "--skills"]) == 0
    out = capsys.readouterr().out
    assert all(f"z={k} only" in out for k in range(4)) and "z=4" not in out
    assert main(["evaluate", str(run), "--skills", "--from-results"]) == 2
    assert "cannot be combined with --from-results" in capsys.readouterr().err


def test_checkpoint_of_another_model_is_a_clear_error(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(data_root, run)) == 0
    capsys.readouterr()
    rc = main(train_args(data_root, run, "--gin_param", "NUM_SKILLS = 3"))
    err = capsys.readouterr().err
    assert rc == 2 and "does not fit HyGenLearner" in err and "num_skills" in err and "Traceback" not in err


def test_missing_dataset_is_named(tmp_path, capsys):
    rc = main(train_args(tmp_path / "nowhere", tmp_path / "run"))
    err = capsys.readouterr().err
    assert rc == 2 and "nowhere" in err and "3m" in err


@pytest.mark.slow
def test_hygen_learns_to_fight_3m_end_to_end(tmp_path):
    """HyGen through the command line, both phases on scripted 3m data, learns to fight: its
    greedy policy's return rises from the untrained policy's (0-1.4: it idles to the time
    limit) to 5-8 on average over phase 2's evaluations (seeds 1-2, four variants: data,
    exploration, phase-2 length). The paper's stronger claim at this scale, that phase 2 wins
    more than phase 1 alone, does not hold in the calibrated game (0-6 % wins at every
    evaluation after step 50 in all five runs; the legacy game passed it on a knife edge:
    91 / 94 % then 0 %); docs/results.md tests it with the protocol that can."""
    from hygen.collect import collect_map

    collect_map("3m", tmp_path / "data", policy="heuristic", episodes=200, seed=0, device="cpu")
    run = tmp_path / "run"
    skill_steps, policy_steps = 150, 250
    args = ["train", "--gin_file", "hygen", "--gin_file", "data/medium", "--run_dir", str(run), "--device", "cpu",
            "--seed", "1",
            "--gin_param", "SOURCE_MAPS = ['3m']", "--gin_param", "EVAL_MAPS = ['3m']",
            "--gin_param", f"DATA_ROOT = '{tmp_path / 'data'}'",
            "--gin_param", f"SKILL_STEPS = {skill_steps}", "--gin_param", f"POLICY_STEPS = {policy_steps}",
            "--gin_param", "Trainer.batch_size = 8", "--gin_param", "Trainer.offline_episodes = 200",
            "--gin_param", "LinearDecayRatio.decay_steps = 150",
            "--gin_param", "Trainer.eval_every = 50", "--gin_param", "Trainer.eval_episodes = 32",
            "--gin_param", "Trainer.checkpoint_every = 1000"]
    assert main(args) == 0
    evals = {e["step"]: e["return_mean"]["3m"] for e in json.loads((run / "results.json").read_text())["evals"]}
    # greedy play can flip between evaluations at this tiny scale: judge phase 2 on average
    phase2 = [r for step, r in evals.items() if step > skill_steps]
    print(f"3m return: untrained {evals[0]:.1f}, after phase 1 {evals[skill_steps]:.1f}, phase 2 {phase2}")
    assert sum(phase2) / len(phase2) >= evals[0] + 3.0, evals


def test_changed_config_on_resume(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(data_root, run)) == 0
    before = (run / "config.gin").read_text()
    # Refused (another model): the run keeps its config and still resumes without --gin_file.
    assert main(train_args(data_root, run, "--gin_param", "NUM_SKILLS = 3")) == 2
    assert (run / "config.gin").read_text() == before
    assert main(["train", "--run_dir", str(run), "--device", "cpu"]) == 0
    # Accepted (a longer run of the same model): the earlier config is kept beside it.
    assert main(train_args(data_root, run, "--gin_param", "POLICY_STEPS = 4")) == 0
    assert (run / "config.previous-1.gin").read_text() == before
    assert json.loads((run / "results.json").read_text())["steps"] == 7


def test_a_resumed_run_keeps_the_game_it_was_made_in(data_root, tmp_path, capsys):
    """meta.json records the run's game; resuming in another one (a changed SimEnv default, a
    binding) is refused before anything is written, naming the file, what differs and how to
    resume it in its own game. A run recorded before the record existed played the legacy game."""
    from hygen.envs import CALIBRATED_GAME

    run = tmp_path / "run"
    assert main(train_args(data_root, run)) == 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["game"] == {"backend": "sim", "collision_variation": False, "ordered_fire": False, **CALIBRATED_GAME}
    capsys.readouterr()
    config_before = (run / "config.gin").read_text()
    assert main(["train", "--run_dir", str(run), "--gin_param", "SimEnv.collisions = False"]) == 2
    err = capsys.readouterr().err
    assert "meta.json" in err and "collisions: True / False" in err and "Traceback" not in err
    assert (run / "config.gin").read_text() == config_before and not list(run.glob("config.previous-*"))

    del meta["game"]  # a run from before the record: the legacy game
    (run / "meta.json").write_text(json.dumps(meta))
    assert main(["train", "--run_dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "collisions: False / True" in err and "envs/legacy" in err, err
    # evaluation plays a run in its own game, and says so when that is not the default
    assert main(["evaluate", str(run), "--episodes", "2", "--device", "cpu"]) == 0
    assert "evaluated in the game it was made in (collisions: False / True" in capsys.readouterr().err
    assert main(["train", "--run_dir", str(run), "--gin_file", str(run / "config.gin"), "--gin_file", "envs/legacy"]) == 0
    assert not json.loads((run / "meta.json").read_text())["game"]["collisions"]


def test_a_finished_run_can_drop_its_replay_buffers(data_root, tmp_path, capsys):
    """Trainer.keep_buffers_when_done = False: the last checkpoint of a finished run holds no
    replay buffers (most of its size); the run still evaluates, and continuing it says that its
    buffers start empty."""
    import torch

    run = tmp_path / "run"
    assert main(train_args(data_root, run, "--gin_param", "Trainer.keep_buffers_when_done = False")) == 0
    (ckpt,) = (run / "checkpoints").glob("ckpt_*.pt")
    assert torch.load(ckpt, weights_only=False)["buffers"] is None
    assert main(["evaluate", str(run), "--episodes", "2", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(train_args(data_root, run, "--gin_param", "Trainer.keep_buffers_when_done = False",
                           "--gin_param", "POLICY_STEPS = 4")) == 0
    assert "holds no replay buffers" in capsys.readouterr().err
    assert json.loads((run / "results.json").read_text())["steps"] == 7
