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
