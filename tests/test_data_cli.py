"""hygen data info / validate."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from hygen.buffers import write_episodes
from hygen.buffers.synthetic import random_episodes
from hygen.cli import main


def test_info_real_file(real_3m_path, capsys):
    assert main(["data", "info", str(real_3m_path)]) == 0
    out = capsys.readouterr().out
    assert "3m" in out and "medium" in out and "2000" in out and "54.1 %" in out and "14.00" in out
    assert "30/48/9/61" in out


def test_info_json_and_totals(tmp_path, capsys):
    write_episodes(tmp_path / "5m" / "expert" / "part_0.h5", random_episodes("5m", 10, win_fraction=1.0, seed=1))
    write_episodes(tmp_path / "5m" / "expert" / "part_1.h5", random_episodes("5m", 30, win_fraction=0.0, seed=2))
    assert main(["data", "info", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["episodes"] for r in out["files"]] == [10, 30]
    assert [r["win_rate"] for r in out["files"]] == [1.0, 0.0]
    (total,) = out["totals"]
    assert total["episodes"] == 40 and total["win_rate"] == pytest.approx(0.25) and total["agents"] == 5
    assert total["shapes"] == {"obs": 4 + 5 * 5 + 5 * 4 + 1, "state": 5 * 4 + 5 * 3 + 5 * 11,
                               "n_actions": 11, "T": 91}


def test_validate_ok_and_inconsistent(tmp_path, capsys):
    good = write_episodes(tmp_path / "3m" / "medium" / "part_0.h5", random_episodes("3m", 8, seed=3))
    assert main(["data", "validate", str(good)]) == 0
    assert "ok" in capsys.readouterr().out

    bad = write_episodes(tmp_path / "3m" / "medium" / "part_1.h5", random_episodes("3m", 8, seed=4))
    with h5py.File(bad, "a") as f:
        avail = f["avail_actions"][:]
        actions = f["actions"][:]
        avail[2, 0, 1, actions[2, 0, 1, 0]] = 0  # agent 1's chosen action at t=0 made unavailable
        f["avail_actions"][...] = avail
        onehot = f["actions_onehot"][:]
        onehot[5, 1, 0] = 0
        f["actions_onehot"][...] = onehot
        term = f["terminated"][:]
        term[6] = 0
        f["terminated"][...] = term
    assert main(["data", "validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "part_1.h5" in out
    assert "a chosen action is not available: 1 episode(s), e.g. [2]" in out
    assert "'actions_onehot' differs" in out and "e.g. [5]" in out
    assert "'terminated' is not 1 exactly at the last step" in out and "e.g. [6]" in out
    assert "1/2 file(s) valid" in out


def test_validate_wrong_map_and_missing_key(tmp_path, capsys):
    path = write_episodes(tmp_path / "x" / "part_0.h5", random_episodes("3m", 4, seed=5))
    assert main(["data", "validate", str(path), "--map", "5m"]) == 1
    assert "key 'obs' has shape (4, 61, 3, 30), expected (4, 61, 5, 50) for map '5m'" in capsys.readouterr().out
    with h5py.File(path, "a") as f:
        del f["state"]
    assert main(["data", "validate", str(path)]) == 1
    assert "missing key 'state'" in capsys.readouterr().out


def test_validate_real_file(real_3m_path, capsys):
    assert main(["data", "validate", str(real_3m_path)]) == 0
    assert "ok" in capsys.readouterr().out


def test_missing_path_is_one_clear_error(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path / "nope.h5")]) == 2
    err = capsys.readouterr().err
    assert "nope.h5: no such file or directory" in err and "Traceback" not in err


def test_info_bad_file_reports_and_fails(tmp_path, capsys):
    path = tmp_path / "3m" / "medium" / "part_0.h5"
    path.parent.mkdir(parents=True)
    path.write_bytes(np.zeros(100, np.uint8).tobytes())
    assert main(["data", "info", str(path)]) == 1
    assert "not a readable HDF5 file" in capsys.readouterr().err
