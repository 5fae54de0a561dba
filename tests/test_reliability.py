"""Bad input and interrupted runs found from a fresh clone (issue 18): each one clear, or handled."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from hygen.cli import build_parser, main
from hygen.rundir import LineProgress, RunDir
from hygen.trainer import Phase, Trainer, TrainerError

torch.set_num_threads(1)

QMIX_TINY = ["--gin_file", "qmix", "--device", "cpu", "--gin_param", "online/Phase.steps = 4",
             "--gin_param", "Trainer.batch_size = 2", "--gin_param", "Trainer.num_envs = 2",
             "--gin_param", "Trainer.eval_every = 4", "--gin_param", "Trainer.eval_episodes = 1",
             "--gin_param", "Trainer.checkpoint_every = 2"]


def qmix_trainer(tmp_path, **kw):
    from hygen.learners.qmix import QMIXLearner

    args = {"run_dir": RunDir(tmp_path / "run"), "learner": QMIXLearner, "source_maps": ["3m"],
            "phases": [Phase("online", 4)], "num_envs": 2, "batch_size": 2, "eval_episodes": 1}
    return Trainer(**{**args, **kw})


def test_zero_episodes_per_step_is_one_line_naming_the_binding(tmp_path, capsys):
    assert main(["train", *QMIX_TINY, "--gin_param", "Trainer.episodes_per_step = 0",
                 "--run_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Trainer.episodes_per_step must be >= 1, got 0" in err and "Traceback" not in err


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_offline_episodes_must_be_a_positive_count(tmp_path, n):
    with pytest.raises(TrainerError, match=r"Trainer.offline_episodes must be (>= 1|a whole number >= 1), got"):
        qmix_trainer(tmp_path, offline_episodes=n)
    qmix_trainer(tmp_path, offline_episodes=None)  # None: the whole dataset


def test_step_counts_are_whole_numbers(tmp_path):
    with pytest.raises(TrainerError, match=r"Phase 'online': steps must be a whole number >= 0, got 2.5 \(float\)"):
        qmix_trainer(tmp_path, phases=[Phase("online", 2.5)])
    with pytest.raises(TrainerError, match=r"Phase 'online': steps must be a whole number >= 0, got '10' \(str\)"):
        qmix_trainer(tmp_path, phases=[Phase("online", "10")])
    with pytest.raises(TrainerError, match=r"Trainer.eval_every must be a whole number >= 1, got 1.5"):
        qmix_trainer(tmp_path, eval_every=1.5)


def test_step_count_through_a_macro_is_a_clear_error(tmp_path, capsys):
    rc = main(["train", "--gin_file", "hygen", "--gin_file", "tasksets/marine_hard", "--gin_file", "data/medium",
               "--gin_param", "SKILL_STEPS = 2.5", "--run_dir", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "Phase 'skill_discovery': steps must be a whole number >= 0, got 2.5" in err


def test_dataset_hint_suggests_the_fast_scripted_collection_first(tmp_path):
    with pytest.raises(ValueError, match=r"hygen collect --map 3m --policy heuristic --data-root"):
        qmix_trainer(tmp_path, data_root=str(tmp_path / "none"), data_quality="medium")


def test_resume_takes_the_seed_from_the_run_and_warns_about_a_changed_config(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *QMIX_TINY, "--run_dir", str(run), "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["train", "--run_dir", str(run)]) == 0  # the README's resume: no --seed needed
    err = capsys.readouterr().err
    assert "resuming" in err and "changed config" not in err
    assert json.loads((run / "meta.json").read_text())["seed"] == 3
    assert main(["train", "--run_dir", str(run), "--gin_param", "Trainer.batch_size = 3"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "changed config" in err and "config.previous-1.gin" in err
    assert "-Trainer.batch_size = 2" in err and "+Trainer.batch_size = 3" in err
    assert json.loads((run / "results.json").read_text())["seed"] == 3
    # an explicit other seed is still refused
    assert main(["train", "--run_dir", str(run), "--seed", "0"]) == 2
    assert "created with seed 3" in capsys.readouterr().err


def test_a_checkpoint_write_killed_midway_leaves_no_temporary_file_behind(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.checkpoint_dir.mkdir(parents=True)
    leftover = rd.checkpoint_dir / ".ckpt_00000100.pt.x1y2z3.tmp"  # what a SIGKILL mid-torch.save leaves
    leftover.write_bytes(b"\0" * 1000)
    other = rd.checkpoint_dir / "notes.tmp"  # not ours: kept
    other.write_text("x")
    rd.save_checkpoint({"w": torch.zeros(1)}, 200)
    assert not leftover.exists() and other.exists()
    assert [p.name for p in rd.checkpoints()] == ["ckpt_00000200.pt"]


def test_evaluate_a_missing_path_says_it_does_not_exist(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "no_such_run")]) == 2
    err = capsys.readouterr().err
    assert "no_such_run: no such directory" in err and "not a run directory" not in err


def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_option_of_every_command_has_help_text():
    for name, p in _subparsers().items():
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"hygen {name} {'/'.join(action.option_strings) or action.dest}: no help text"


def test_train_help_example_keeps_its_line_continuation():
    """Every example line that goes on ends in a bare backslash, and the next line carries on the options
    (argparse's formatter once ate the newline after it)."""
    lines = _subparsers()["train"].format_help().split("examples:")[1].splitlines()
    continued = [i for i, line in enumerate(lines) if line.rstrip().endswith("\\")]
    assert continued, "the examples have no multi-line command any more"
    for i in continued:
        assert lines[i].endswith(" \\"), repr(lines[i])  # nothing after the backslash
        assert lines[i + 1].startswith("  ") and lines[i + 1].strip().startswith("--"), repr(lines[i + 1])
    for i, line in enumerate(lines):  # and every continuation line follows one
        if line.strip().startswith("--") and line.startswith("   "):
            assert lines[i - 1].endswith(" \\"), repr(lines[i - 1])
        if line.strip() == "options:":
            break


def test_run_commands_take_threads():
    for name in ("train", "evaluate", "collect", "demo"):
        assert any("--threads" in a.option_strings for a in _subparsers()[name]._actions), name
    data = next(a for a in _subparsers()["data"]._actions if isinstance(a, argparse._SubParsersAction))
    for action in ("info", "validate"):
        assert any("--threads" in a.option_strings for a in data.choices[action]._actions), action


def test_list_names_maps_task_sets_and_configs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "9m_vs_10m   9 marines vs 10 marines, 140 steps" in out
    assert "source: 3m, 5m_vs_6m, 9m_vs_10m" in out
    assert "ablations/no_cql" in out and "tasksets/marine_hard" in out and "demo" in out
    assert main(["list", "task-sets"]) == 0
    out = capsys.readouterr().out
    assert "marine-hard" in out and "9m_vs_10m   9 marines" not in out


def test_progress_in_a_log_is_plain_lines(monkeypatch, capsys):
    monkeypatch.delenv("HYGEN_NO_PROGRESS", raising=False)
    bar = RunDir.progress(10, initial=2, desc="train", interval=0.0)  # stderr is captured: not a terminal
    assert isinstance(bar, LineProgress)
    for _ in range(3):
        bar.update(1)
    bar.set_postfix({"phase": "policy", "win": "0.50"})
    bar.update(1)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("train 3/10 steps (30 %)") and len(lines) == 4
    assert lines[-1].startswith("train 6/10 steps (60 %)") and lines[-1].endswith("phase=policy, win=0.50")
    assert "ETA" not in lines[0] and "ETA" in lines[-1]  # the first interval holds the slow start


def test_threads_default_to_one_unless_set(tmp_path, monkeypatch):
    import hygen.threads
    import hygen.utils

    monkeypatch.setattr(hygen.utils, "_THREADS_SET", False)
    torch.set_num_threads(2)
    try:
        qmix_trainer(tmp_path)  # nothing set them: hygen's default (a fixed 1, or auto, which starts at 1)
        assert torch.get_num_threads() == 1
        assert hygen.threads.current().describe() == str(hygen.utils.DEFAULT_THREADS)
        torch.set_num_threads(2)
        qmix_trainer(tmp_path)  # the CLI's --threads (or an earlier set_threads) is kept
        assert torch.get_num_threads() == 2
        qmix_trainer(tmp_path, num_threads=1)  # a bound Trainer.num_threads wins
        assert torch.get_num_threads() == 1
        with pytest.raises(TrainerError, match="Trainer.num_threads: threads must be a positive integer or 'auto', got 0"):
            qmix_trainer(tmp_path, num_threads=0)
    finally:
        torch.set_num_threads(1)


def test_threads_flag_rejects_a_non_positive_count(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--threads", "0", "--run_dir", "x"])
    assert e.value.code == 2 and "--threads: expected a positive whole number or 'auto', got '0'" in capsys.readouterr().err


def test_list_names_what_it_cannot_list(capsys):
    assert main(["list", "mapz"]) == 2
    assert "nothing called 'mapz' to list; expected any of maps, task-sets, configs" in capsys.readouterr().err
