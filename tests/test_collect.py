"""Dataset collection: medium-snapshot choice, heuristic and QMIX collection, resume after a kill."""

from __future__ import annotations

import json

import pytest
import torch

from hygen import collect
from hygen.buffers import DatasetError, OfflineDataset, read_episodes, validate_file
from hygen.collect import CollectError, choose_expert_snapshot, choose_medium_snapshot, collect_map, part_path

torch.set_num_threads(1)  # tiny networks on a shared 2-core CPU: extra threads only spin


def test_choose_medium_snapshot_known_history():
    history = [{"step": 0, "win_rate": 0.0}, {"step": 500, "win_rate": 0.1875},
               {"step": 1000, "win_rate": 0.4375}, {"step": 1500, "win_rate": 0.5625},
               {"step": 2000, "win_rate": 0.90625}, {"step": 2500, "win_rate": 0.84375}]
    assert choose_expert_snapshot(history)["step"] == 2000
    assert choose_medium_snapshot(history)["step"] == 1000  # |0.4375 - 0.453| is the smallest gap
    assert choose_medium_snapshot(history, expert_win_rate=1.1)["step"] == 1500  # target 0.55
    ties = [{"step": 0, "win_rate": 0.25}, {"step": 1, "win_rate": 0.75}, {"step": 2, "win_rate": 1.0}]
    assert choose_medium_snapshot(ties)["step"] == 0  # equal gaps: the earlier (less trained) one
    again = [{"step": 0, "win_rate": 1.0}, {"step": 1, "win_rate": 1.0}]
    assert choose_expert_snapshot(again)["step"] == 1  # equal best: the later one
    with pytest.raises(CollectError, match="never wins"):
        choose_medium_snapshot([{"step": 0, "win_rate": 0.0}])
    losing = [{"step": 0, "win_rate": 0.0, "return_mean": 1.0}, {"step": 1, "win_rate": 0.0, "return_mean": 4.5},
              {"step": 2, "win_rate": 0.0, "return_mean": 9.0}]
    assert choose_medium_snapshot(losing)["step"] == 1  # no wins: half the best return instead
    with pytest.raises(CollectError, match="empty"):
        choose_medium_snapshot([])


def _check_parts(root, map_name, episodes):
    stats = {}
    for q in collect.QUALITIES:
        name, n, problems = validate_file(part_path(root, map_name, q), map_name)
        assert name == map_name and problems == [], (q, problems)
        stats[q] = n
    assert stats["expert"] == stats["medium"] == episodes
    assert stats["medium-expert"] == 2 * episodes
    return stats


def test_heuristic_collection_valid_files_manifest_and_resume(tmp_path, monkeypatch):
    kw = {"policy": "heuristic", "episodes": 24, "num_envs": 8, "calibration_episodes": 16, "log": lambda s: None}
    # simulate a kill right after the first part is written
    real_write, writes = collect._atomic_write, []

    def dying_write(path, batch):
        if writes:
            raise KeyboardInterrupt("killed")
        real_write(path, batch)
        writes.append(path)

    monkeypatch.setattr(collect, "_atomic_write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        collect_map("3m", tmp_path, **kw)
    expert = part_path(tmp_path, "3m", "expert")
    assert writes == [expert] and not part_path(tmp_path, "3m", "medium").exists()
    assert not list(tmp_path.rglob(".*.tmp")), "no half-written files left behind"
    mtime = expert.stat().st_mtime_ns
    calibration = json.loads((tmp_path / "3m" / "collect.json").read_text())["medium_epsilon"]

    monkeypatch.setattr(collect, "_atomic_write", real_write)
    entry = collect_map("3m", tmp_path, **kw)
    assert expert.stat().st_mtime_ns == mtime, "the finished part was skipped, not rewritten"
    assert entry["medium_epsilon"] == calibration
    _check_parts(tmp_path, "3m", 24)
    q = entry["qualities"]
    # on 3m the scripted focus fire wins most games (about 80 % in the simulator since its enemy-AI
    # calibration); the medium policy wins clearly less
    assert q["expert"]["win_rate"] >= 0.6 and q["medium"]["win_rate"] < q["expert"]["win_rate"]
    assert q["medium-expert"]["episodes"] == 48
    ds = OfflineDataset.load(tmp_path, "3m", "medium-expert", max_episodes=None)
    assert len(ds) == 48
    jpath, mpath = collect.write_manifest(tmp_path, {"3m": entry})
    assert json.loads(jpath.read_text())["3m"]["qualities"]["expert"]["episodes"] == 24
    assert "| 3m | medium-replay | heuristic | 24 |" in mpath.read_text()
    # a third run finds everything done and writes nothing
    monkeypatch.setattr(collect, "_atomic_write", lambda *a: pytest.fail("rewrote a finished part"))
    collect_map("3m", tmp_path, **kw)


def test_qmix_collection_tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    entry = collect_map("3m", tmp_path, policy="qmix", episodes=8, num_envs=8, qmix_steps=30, qmix_eval_every=10,
                        buffer_size=20, log=lambda s: None,
                        trainer_kwargs={"num_envs": 4, "batch_size": 8, "eval_episodes": 4})
    stats = _check_parts(tmp_path, "3m", 8)
    info = entry["qmix"]
    assert [h["step"] for h in info["history"]] == [0, 10, 20, 30]
    medium = info["medium_snapshot"]
    # medium-replay = the replay buffer at the medium snapshot: min(buffer, episodes collected by then)
    assert medium["step"] > 0 and medium["episodes"] > 0
    assert stats["medium-replay"] == min(20, medium["episodes"])
    replay = read_episodes(part_path(tmp_path, "3m", "medium-replay"), "3m")
    assert (replay.episode_lengths > 0).all()
    assert not (tmp_path / "_runs" / "3m" / "episode_log").exists()  # temporary log removed


def test_qmix_collection_through_the_cli_with_a_gin_config(tmp_path, monkeypatch, capsys):
    """`hygen collect --gin_file qmix_tuned`: the gin config's learner and episodes-per-update apply,
    the map being collected (not the config's SOURCE_MAPS) is trained and evaluated, and a typo in
    a binding is one clear error."""
    from hygen.cli import main

    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    # 5m, not the config's 3m (on 4m, since the enemy-AI change of 8c5505d, no snapshot of this
    # 4-update run has a positive return to halve, and collection rightly refuses)
    base = ["collect", "--map", "5m", "--policy", "qmix", "--data-root", str(tmp_path), "--episodes", "4",
            "--num-envs", "4", "--qmix-steps", "4", "--qmix-eval-every", "2", "--qmix-stop-win-rate", "0",
            "--gin_file", "qmix_tuned", "--gin_param", "Trainer.eval_episodes = 4",
            "--gin_param", "Trainer.batch_size = 8"]
    assert main(base) == 0
    meta = json.loads((tmp_path / "5m" / "collect.json").read_text())
    assert meta["qmix_config"]["gin_files"] == ["qmix_tuned"]
    hist = meta["qmix"]["history"]
    assert [h["step"] for h in hist] == [0, 2, 4]
    # qmix_tuned collects 8 episodes per update (the first update waits for batch_size episodes)
    assert hist[2]["episodes"] - hist[1]["episodes"] == 2 * 8
    assert validate_file(part_path(tmp_path, "5m", "expert"), "5m") == ("5m", 4, [])
    table = (tmp_path / "manifest.md").read_text().split("## QMIX behaviour policies")[1]
    assert f"| 5m | 4 | {meta['qmix']['env_steps']:,} |" in table  # how the behaviour policy was trained
    capsys.readouterr()
    assert main(base[:-2] + ["--gin_param", "QMIXLearner.td_lamda = 0.6", "--data-root", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "td_lamda" in err and "td_lambda" in err  # names the binding and suggests the right one


def test_flank_steps_aside_until_the_wait_is_over_then_focus_fires():
    from helpers import scripted_play

    from hygen.envs.scripted import FLANK_WAIT_STEPS, focus_fire_actions

    env, ctl, state, start = scripted_play("9m_vs_10m", 4, "flank")
    for t in range(FLANK_WAIT_STEPS + 3):
        avail = env.get_avail_actions()
        actions, state = ctl.act("9m_vs_10m", None, avail, state, 0.0)
        assert state["steps"].tolist() == [t + 1] * 4  # the controller counts each episode's steps
        if t == 0:
            assert (actions == 2).all()  # everyone north, off the enemies' line
        if t >= FLANK_WAIT_STEPS:
            assert torch.equal(actions, focus_fire_actions(env))
        env.step(actions)
    moved = env.unit_positions()[:, :9] - start
    assert (moved[..., 1] > 3).any()  # the team went north before turning to fight


def test_collection_plays_in_the_game_a_gin_file_binds(tmp_path, monkeypatch, capsys):
    """`hygen collect --gin_file envs/legacy` (heuristic policy too) collects in the legacy game,
    records the files in collect.json, and gives other trajectories than the default (calibrated)
    game."""
    import h5py

    from hygen.cli import main

    monkeypatch.setenv("HYGEN_NO_PROGRESS", "1")
    args = ["collect", "--map", "3m", "--policy", "heuristic", "--episodes", "8", "--num-envs", "8"]
    assert main([*args, "--data-root", str(tmp_path / "default")]) == 0
    assert main([*args, "--data-root", str(tmp_path / "legacy"), "--gin_file", "envs/legacy"]) == 0
    meta = json.loads((tmp_path / "legacy" / "3m" / "collect.json").read_text())
    assert meta["gin"]["gin_files"] == ["envs/legacy"] and "gin" not in json.loads(
        (tmp_path / "default" / "3m" / "collect.json").read_text())
    states = []
    for root in ("default", "legacy"):
        with h5py.File(part_path(tmp_path / root, "3m", "expert"), "r") as f:
            states.append(f["state"][:, :5])
    assert states[0].shape == states[1].shape and not (states[0] == states[1]).all()
    # collect.json records the game, and a collection in another game does not resume into it
    from hygen.envs import CALIBRATED_GAME, MECHANICS

    games = {r: json.loads((tmp_path / r / "3m" / "collect.json").read_text())["game"] for r in ("default", "legacy")}
    assert games["legacy"] == {"backend": "sim", **{k: False for k in MECHANICS}}
    assert games["default"] == {"backend": "sim", **{k: CALIBRATED_GAME.get(k, False) for k in MECHANICS}}
    assert main([*args, "--data-root", str(tmp_path / "default"), "--gin_file", "envs/legacy"]) != 0
    assert "collected in another game" in capsys.readouterr().err

    # a run that plays another game than its data's is refused, naming the file and the override
    from hygen import config
    from hygen.trainer import Trainer

    def trainer(root="default", *bindings):
        config.reset()
        config.parse_config(["methods/bc_t", "runs/offline", "data/expert"],
                            ["SOURCE_MAPS = ['3m']", "EVAL_MAPS = ['3m']", f"DATA_ROOT = '{tmp_path / root}'",
                             "SKILL_STEPS = 1", "POLICY_STEPS = 1", "Trainer.offline_episodes = 8", *bindings])
        try:
            return Trainer(run_dir=tmp_path / "run", seed=0, num_threads=1)
        finally:
            config.reset()

    assert len(trainer().offline["3m"]) == 8
    with pytest.raises(DatasetError, match=r"3m/collect.json.*collisions: True / False.*data_from_other_game"):
        trainer("default", "SimEnv.collisions = False")
    assert len(trainer("default", "SimEnv.collisions = False", "Trainer.data_from_other_game = True").offline["3m"]) == 8
    # a record from before the game was recorded: the legacy game, refused by the default one
    meta_path = tmp_path / "legacy" / "3m" / "collect.json"
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "game"}))
    with pytest.raises(DatasetError, match=r"legacy/3m/collect.json.*collisions: False / True.*envs/legacy"):
        trainer("legacy")
    assert len(trainer("legacy", "include 'envs/legacy.gin'").offline["3m"]) == 8
    capsys.readouterr()
    assert main([*args, "--data-root", str(tmp_path / "legacy")]) != 0  # nor does a collection resume into it
    assert "collected in another game" in capsys.readouterr().err
    # a record that cannot be read is named, not skipped
    meta_path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"legacy/3m/collect.json: cannot read the collection record"):
        trainer("legacy")
