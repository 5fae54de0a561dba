"""Run directories: provenance files, atomic checkpoints, fallback past a corrupt one, model checks."""

import json

import pytest
import torch

from hygen.rundir import CheckpointError, RunDir, check_state_dict


def test_meta_config_results(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.write_config("a.b = 1\n")
    meta = rd.write_meta(seed=7, gin_files=["x.gin"])
    rd.write_results({"win_rate": {"3m": [0.5]}})
    assert (rd.path / "config.gin").read_text() == "a.b = 1\n"
    stored = json.loads((rd.path / "meta.json").read_text())
    assert stored["seed"] == 7 and stored["versions"]["torch"] == torch.__version__
    assert "git_revision" in stored and meta["gin_files"] == ["x.gin"]
    assert rd.read_results() == {"win_rate": {"3m": [0.5]}}


def test_resume_refuses_another_seed(tmp_path):
    RunDir(tmp_path).write_meta(seed=1)
    with pytest.raises(CheckpointError, match="seed 1.*seed 2"):
        RunDir(tmp_path).write_meta(seed=2)


def test_tensorboard_events_written(tmp_path):
    rd = RunDir(tmp_path)
    rd.log_scalars({"loss": 1.5}, step=3)
    rd.close()
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_checkpoints_keep_newest_and_skip_corrupt(tmp_path):
    rd = RunDir(tmp_path, keep_checkpoints=2)
    for step in (10, 20, 30):
        rd.save_checkpoint({"w": torch.full((2,), float(step))}, step)
    assert [p.name for p in rd.checkpoints()] == ["ckpt_00000020.pt", "ckpt_00000030.pt"]
    assert rd.load_checkpoint()["step"] == 30
    # A torn write of the newest file: resume falls back to the previous good one.
    rd.checkpoints()[-1].write_bytes(b"\x80garbage")
    ckpt = rd.load_checkpoint()
    assert ckpt["step"] == 20 and ckpt["w"][0].item() == 20.0
    assert not list(rd.checkpoint_dir.glob("*.tmp"))


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    rd = RunDir(tmp_path)
    rd.save_checkpoint({"w": torch.zeros(1)}, 5)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        rd.save_checkpoint({"w": Boom()}, 5)
    assert rd.load_checkpoint()["step"] == 5
    assert not list(rd.checkpoint_dir.glob(".*tmp"))


def test_no_checkpoint_is_none(tmp_path):
    assert RunDir(tmp_path).load_checkpoint() is None


def test_checkpoint_from_another_model_is_named(tmp_path):
    model = torch.nn.Linear(4, 3)
    other = torch.nn.Sequential(torch.nn.Linear(5, 3))
    with pytest.raises(CheckpointError) as e:
        check_state_dict(model.state_dict(), other.state_dict(), "ckpt.pt")
    assert "ckpt.pt" in str(e.value) and "missing keys: bias, weight" in str(e.value)
    wider = torch.nn.Linear(5, 3)
    with pytest.raises(CheckpointError, match=r"weight: checkpoint \(3, 5\) vs model \(3, 4\)"):
        check_state_dict(model.state_dict(), wider.state_dict(), "ckpt.pt")


def test_run_files_are_ordinary_readable_files(tmp_path):
    import os

    rd = RunDir(tmp_path)
    rd.write_config("x = 1\n")
    rd.save_checkpoint({"w": 1}, 5)
    umask = os.umask(0)
    os.umask(umask)
    for p in (tmp_path / "config.gin", rd.checkpoints()[0]):
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_damaged_json_names_the_file(tmp_path):
    from hygen.rundir import CheckpointError

    (tmp_path / "results.json").write_text("{'step': 1,")
    with pytest.raises(CheckpointError, match=r"results\.json: not valid JSON"):
        RunDir(tmp_path).read_results()


def _try_hold_in_another_process(path) -> str:
    """Whether another process can take ``path``'s lock now: 'held' or the error's first words."""
    import subprocess
    import sys

    code = ("import sys; from hygen.dirlock import hold_directory, DirectoryInUseError\n"
            "try:\n    hold_directory(sys.argv[1]); print('held')\n"
            "except DirectoryInUseError as e:\n    print('refused', e)")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_directory_holds_nest_and_the_last_release_lets_go(tmp_path):
    """A run holds its directory from `hygen train`'s setup and again in Trainer.run: the inner
    release must not free it while the outer still writes."""
    import os

    from hygen.dirlock import hold_directory, release_directory

    hold_directory(tmp_path)
    hold_directory(tmp_path)
    assert (tmp_path / ".lock").read_text().strip().startswith(f"pid {os.getpid()} ")
    release_directory(tmp_path)
    assert _try_hold_in_another_process(tmp_path).startswith(f"refused {tmp_path.resolve()}: in use by pid {os.getpid()}")
    release_directory(tmp_path)
    assert not (tmp_path / ".lock").exists()
    assert _try_hold_in_another_process(tmp_path) == "held"
    release_directory(tmp_path)  # not held: nothing happens


def test_a_directory_removed_and_made_again_is_locked_afresh(tmp_path):
    """If the directory (and its lock file) is deleted under a holder and made again, the old
    hold counts for nothing: the next hold locks the new file, and releasing it removes only
    the file this process locked."""
    import shutil

    from hygen.dirlock import hold_directory, release_directory

    d = tmp_path / "run"
    d.mkdir()
    hold_directory(d)
    shutil.rmtree(d)
    d.mkdir()
    hold_directory(d)  # a fresh lock on the new .lock
    assert _try_hold_in_another_process(d).startswith("refused")
    release_directory(d)
    assert not (d / ".lock").exists()

