"""The hygen console script: subcommands listed, bad input ends in one clear line."""

import subprocess
import sys

import pytest

from hygen.cli import main


def test_help_lists_subcommands(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "evaluate", "collect", "data"):
        assert cmd in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "hygen.cli", "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "train" in out.stdout


def test_train_gin_typo_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.gin"
    bad.write_text("Trainner.eval_every = 5\n")
    rc = main(["train", "--gin_file", str(bad), "--run_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bad.gin" in err and "Trainner" in err and "Traceback" not in err


def test_train_without_config_says_what_to_do(tmp_path, capsys):
    rc = main(["train", "--run_dir", str(tmp_path / "fresh")])
    assert rc == 2 and "no --gin_file given" in capsys.readouterr().err


def test_evaluate_pools_only_runs_that_differ_in_seed(tmp_path):
    import json

    from hygen.commands.evaluate import run_labels

    def run(name, files, params=(), seed=0):
        d = tmp_path / name
        d.mkdir()
        (d / "meta.json").write_text(json.dumps({"gin_files": files, "gin_params": list(params), "seed": seed}))
        return d

    base = ["hygen", "tasksets/marine_hard", "data/medium"]
    dirs = [run("a0", base), run("a1", base, seed=1),                                   # seeds: pooled
            run("abl", ["hygen", "ablations/no_cql", "tasksets/marine_hard", "data/medium"]),
            run("greedy", base + [], ["HyGenLearner.explore_actions = 'greedy'"]),      # a --gin_param
            run("expert", ["hygen", "tasksets/marine_hard", "data/expert"]),            # another quality
            run(name="cfg", files=["config.gin"])]
    labels, legend = run_labels(dirs)
    assert labels[0] == labels[1] == "hygen (1)" and legend["hygen (1)"] == "data/medium"
    assert labels[2] == "hygen+no_cql"
    assert labels[3] == "hygen (2)" and legend["hygen (2)"] == "data/medium, HyGenLearner.explore_actions='greedy'"
    assert labels[4] == "hygen (3)" and legend["hygen (3)"] == "data/expert"
    assert labels[5] == "cfg"  # no meta beyond the stored config: the directory's name
    # runs that share method and settings pool under the plain label, with no legend
    assert run_labels(dirs[:3]) == (["hygen", "hygen", "hygen+no_cql"], {})


QMIX_TINY = ["--gin_file", "qmix", "--device", "cpu", "--gin_param", "online/Phase.steps = 4",
             "--gin_param", "Trainer.batch_size = 2", "--gin_param", "Trainer.num_envs = 2",
             "--gin_param", "Trainer.eval_every = 4", "--gin_param", "Trainer.eval_episodes = 1",
             "--gin_param", "Trainer.checkpoint_every = 2"]


def test_a_value_a_component_cannot_use_is_one_line_naming_it(tmp_path, capsys):
    run = tmp_path / "run"
    for binding, says in (("QMIXLearner.hidden_dim = 0", ("RNNAgent: hidden_dim must be a positive integer, got 0 "
                                                         "(while building RNNAgent in QMIXLearner)")),
                          ('QMIXLearner.lr = "abc"', "QMIXLearner could not be built from its bindings: TypeError")):
        assert main(["train", *QMIX_TINY, "--run_dir", str(run), "--gin_param", binding]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and "In call to configurable" not in err
        assert not run.exists()  # a refused new run leaves no directory behind


def test_refused_resume_leaves_the_run_as_it_was(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert main(["train", *QMIX_TINY, "--run_dir", str(run), "--seed", "0"]) == 0
    config, meta = (run / "config.gin").read_text(), (run / "meta.json").read_text()
    # another seed: refused before anything is written
    assert main(["train", *QMIX_TINY, "--gin_param", "online/Phase.steps = 8", "--run_dir", str(run),
                 "--seed", "1"]) == 2
    assert "created with seed 0" in capsys.readouterr().err
    # another model on the same checkpoints: refused after building, then undone
    assert main(["train", *QMIX_TINY, "--gin_param", "QMIXLearner.hidden_dim = 32", "--run_dir", str(run)]) == 2
    assert "does not fit QMIXLearner" in capsys.readouterr().err
    assert (run / "config.gin").read_text() == config and (run / "meta.json").read_text() == meta
    assert not list(run.glob("config.previous-*.gin"))
    # resuming with the stored config alone keeps the record of how the run was made
    assert main(["train", "--run_dir", str(run), "--gin_param", "online/Phase.steps = 6"]) == 0
    assert "resuming" in capsys.readouterr().err
    stored = json.loads((run / "meta.json").read_text())
    assert stored["gin_files"] == ["qmix"] and stored["gin_params"][-1] == "online/Phase.steps = 6"
    assert len(stored["history"]) == 2 and json.loads((run / "results.json").read_text())["steps"] == 6


def _hold_in_another_process(path):
    """A child process that holds ``path`` (hygen.dirlock) until it is killed; returns it once it holds."""
    code = ("import sys, time; from hygen.dirlock import hold_directory; hold_directory(sys.argv[1]); "
            "print('held', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_run_another_process_writes_is_refused_and_freed_when_that_process_dies(tmp_path, capsys):
    """Two writers on one run would interleave their checkpoints (a sweep rerun by hand while the
    first still runs). The second stops before writing, naming the holder; the lock dies with
    its process, so a killed run leaves nothing that blocks the resume."""
    run = tmp_path / "run"
    assert main(["train", *QMIX_TINY, "--run_dir", str(run), "--seed", "0"]) == 0
    assert not (run / ".lock").exists()  # a finished run lets go
    files = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    child = _hold_in_another_process(run)
    try:
        assert main(["train", "--run_dir", str(run), "--gin_param", "online/Phase.steps = 6"]) == 2
        err = capsys.readouterr().err
        assert f"pid {child.pid}" in err and str(run.resolve()) in err and "Traceback" not in err
        now = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
        assert now == files  # nothing written
    finally:
        child.kill()
        child.wait()
    assert main(["train", "--run_dir", str(run), "--gin_param", "online/Phase.steps = 6"]) == 0
    assert "resuming" in capsys.readouterr().err


def test_a_run_another_process_writes_can_still_be_evaluated(tmp_path, capsys):
    """Reading is not writing: `hygen evaluate` of a run that is training (here: held by
    another process) works, and takes no lock that would stop the training."""
    run = tmp_path / "run"
    assert main(["train", *QMIX_TINY, "--run_dir", str(run), "--seed", "0"]) == 0
    child = _hold_in_another_process(run)
    try:
        assert main(["evaluate", str(run), "--episodes", "1"]) == 0, capsys.readouterr().err
        assert (run / ".lock").read_text().startswith(f"pid {child.pid} ")
    finally:
        child.kill()
        child.wait()


def test_a_sweep_root_another_sweep_runs_is_refused(tmp_path):
    from hygen.dirlock import DirectoryInUseError
    from hygen.sweep import SweepSpec, run_sweep

    root = tmp_path / "sweep"
    root.mkdir()
    child = _hold_in_another_process(root)
    try:
        spec = SweepSpec(configs={"QMIX": ["qmix"]}, seeds=[0])
        with pytest.raises(DirectoryInUseError, match=f"pid {child.pid}"):
            run_sweep(spec, root, workers=1, print_fn=lambda s: None)
        assert not (root / "sweep.json").exists()
    finally:
        child.kill()
        child.wait()
