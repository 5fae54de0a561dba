"""The hygen console script: subcommands listed, bad input ends in one clear line."""

import subprocess
import sys

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
