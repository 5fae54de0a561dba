"""Sweeps: a 2 x 2 sweep (2 configs x 2 seeds) on the local backend and on Ray completes,
resumes a killed cell, skips finished cells, reports a failing cell, and aggregates."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hygen.sweep import SweepError, SweepSpec, _cell_env, cell_status, parse_grid, run_sweep

TINY = ["SOURCE_MAPS = ['3m']", "Trainer.batch_size = 2", "Trainer.num_envs = 2", "Trainer.eval_episodes = 1",
        "Trainer.episodes_per_step = 1", "Trainer.checkpoint_every = 2", "Trainer.eval_every = 1000"]


def spec(steps: int = 4, **kw) -> SweepSpec:
    return SweepSpec(configs={"qmix": ["qmix"], "tuned": ["qmix_tuned"]}, seeds=[0, 1],
                     gin_params=[*TINY, f"online/Phase.steps = {steps}"], **kw)


def test_cells_are_deterministic_and_ordered_seed_major():
    s = SweepSpec(configs={"HyGen": ["hygen"], "offline-only": ["hygen", "no_online"]}, seeds=[0, 1],
                  task_sets=["marine_hard"], gin_files=["data/medium"], grid=parse_grid(["Trainer.batch_size = [8, 16]"]))
    cells = s.cells()
    assert len(cells) == 8 and [c.seed for c in cells] == [0] * 4 + [1] * 4
    assert [c.name for c in cells] == [c.name for c in s.cells()]
    c = next(c for c in cells if c.config == "offline-only" and c.seed == 1 and c.grid == (("Trainer.batch_size", "16"),))
    assert c.name == "offline-only-marine_hard-batch_size=16-seed1"
    assert c.label == "offline-only marine_hard batch_size=16"  # everything but the seed
    # the ablation goes after the task set; shared files last
    assert c.gin_files == ("hygen", "tasksets/marine_hard", "no_online", "data/medium")
    assert c.gin_params == ("Trainer.batch_size = 16",)


def test_a_config_given_as_method_and_run_parses_with_the_task_set_after_the_run():
    """runs/*.gin leave SOURCE_MAPS REQUIRED: the task set must come after them (and the old
    one-word name, a shim for the same two files, gives the same bindings)."""
    import gin

    from hygen import config

    s = SweepSpec(configs={"new": ["methods/hygen", "runs/hybrid", "ablations/no_online"], "old": ["hygen", "no_online"]},
                  task_sets=["marine_hard"], gin_files=["data/medium"])
    new, old = s.cells()
    assert new.gin_files == ("methods/hygen", "runs/hybrid", "tasksets/marine_hard", "ablations/no_online", "data/medium")
    parsed = []
    for c in (new, old):
        config.reset()
        config.parse_config(list(c.gin_files))
        parsed.append(gin.config_str())
    assert parsed[0] == parsed[1] and "SOURCE_MAPS = ['3m', '5m_vs_6m', '9m_vs_10m']" in parsed[0]
    config.reset()


def test_bad_specs_are_named():
    with pytest.raises(SweepError, match="--grid 'x = 3'"):
        parse_grid(["x = 3"])
    with pytest.raises(SweepError, match=r"configs\['a'\]"):
        SweepSpec(configs={"a": "hygen"})
    with pytest.raises(SweepError, match="unknown keys"):
        SweepSpec.from_dict({"configs": {"a": ["hygen"]}, "seed": [1]})
    with pytest.raises(SweepError, match="unknown sweep backend"):
        run_sweep(spec(), "/nonexistent", backend="slurm")


def _kill_when_checkpointed(cell, root) -> None:
    """Start one cell's `hygen train`, SIGKILL it once it has written a checkpoint mid-run."""
    cell.log_path(root).parent.mkdir(parents=True, exist_ok=True)
    with open(cell.log_path(root), "w") as log:
        proc = subprocess.Popen(cell.command(root), stdout=log, stderr=subprocess.STDOUT, env=_cell_env(),
                                start_new_session=True)
    ckpts = cell.run_dir(root) / "checkpoints"
    deadline = time.time() + 120
    while not any(ckpts.glob("ckpt_*.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_progress_line_projects_the_eta_from_the_running_cells_steps():
    """Before any cell has finished, the ETA comes from how far the running cells got: one
    cell from 0 to 50 % and one resumed at 50 % now at 75 %, 100 s each: 200 s for 0.75 of a
    cell, 266.7 s a cell. Left: 0.5 + 0.25 of the running cells and 2 queued cells on 2
    workers: 266.7 x 2.75 / 2 = 366 s. Finished cells replace the projection (one resumed
    half-way in 100 s: 200 s a cell); with one cell left, one worker does the rest."""
    from hygen.sweep import _Progress

    p = _Progress(total=4, workers=2, print_fn=lambda s: None)
    now = time.time()
    line = p.line([(now - 100, 0.0, 0.5), (now - 100, 0.5, 0.75)])
    assert "0/4 done (0 skipped), 2 running (50 %, 75 %), 0 failed, 2 queued" in line and line.endswith("ETA 366 s")
    assert p.line([]).endswith("ETA ?")
    p.finished_work.append((100.0, 0.5))
    p.done = 1
    assert p.line([(time.time() - 10, 0.0, 0.5)]).endswith("ETA 250 s")  # (100 + 2 x 200) / 2
    p.done = 3
    assert p.line([(time.time() - 10, 0.0, 0.5)]).endswith("ETA 100 s")  # the last cell's half, on one worker


def test_cell_steps_reads_the_newest_checkpoint_and_ignores_other_names(tmp_path):
    from hygen.sweep import cell_steps

    cell = spec().cells()[0]
    ckpts = cell.run_dir(tmp_path) / "checkpoints"
    ckpts.mkdir(parents=True)
    for name in ("ckpt_00000100.pt", "ckpt_00000300.pt", "ckpt_\u00b2.pt", "ckpt_x.pt", ".ckpt_00000400.pt.ab.tmp"):
        (ckpts / name).write_bytes(b"")
    assert cell_steps(cell, tmp_path) == (300, None)
    (cell.run_dir(tmp_path) / "results.json").write_text('{"total_steps": 2000')  # half-written
    assert cell_steps(cell, tmp_path) == (300, None)
    (cell.run_dir(tmp_path) / "results.json").write_text('{"total_steps": 2000}')
    assert cell_steps(cell, tmp_path) == (300, 2000)


@pytest.mark.slow
def test_local_sweep_resumes_a_killed_cell_and_skips_finished_ones(tmp_path):
    root = tmp_path / "sweep"
    s = spec(steps=20)
    killed = s.cells()[0]
    _kill_when_checkpointed(killed, root)
    assert cell_status(killed, root) == "partial"  # killed mid-run, before the end

    lines = []
    out = run_sweep(s, root, backend="local", workers=2, print_fn=lines.append)
    assert {r["status"] for r in out.values()} == {"done"}
    assert "resuming" in killed.log_path(root).read_text()  # it went on from its checkpoint
    assert json.loads((killed.run_dir(root) / "results.json").read_text())["steps"] == 20
    assert any("4/4 done" in line for line in lines)
    assert json.loads((root / "sweep.json").read_text())["cells"][0]["name"] == killed.name

    out = run_sweep(s, root, backend="local", workers=2, print_fn=lines.append)  # again: nothing to do
    assert {r["status"] for r in out.values()} == {"skipped"}


@pytest.mark.slow
def test_sigterm_to_the_sweep_stops_its_cells_and_leaves_nothing_behind(tmp_path):
    """`kill <sweep pid>` (not the process group): the sweep stops its running cells, which
    stop like Ctrl-C, and the sweep root, the cells' run directories and logs/ hold no lock or
    start marker. The same command then resumes."""
    root = tmp_path / "sweep"
    s = spec(steps=60)
    cmd = [sys.executable, "-m", "hygen.cli", "sweep", "--out", str(root), "--config", "qmix=qmix", "--seeds", "0", "--workers", "1",
           *[a for p in s.gin_params for a in ("--gin_param", p)]]
    sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_cell_env())
    cell = root / "qmix-seed0"
    deadline = time.time() + 120
    while not any((cell / "checkpoints").glob("ckpt_*.pt")) and sweep.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert sweep.poll() is None, sweep.stdout.read()
    sweep.send_signal(signal.SIGTERM)
    out, _ = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, out
    log = (root / "logs" / "qmix-seed0.log").read_text()
    assert "hygen train: stopped; run the same command again to resume" in log
    assert not list(root.rglob(".lock")) and not list((root / "logs").glob(".*.started-*"))
    assert not list(root.rglob("*.tmp"))
    assert subprocess.run(cmd, check=False, capture_output=True, text=True, env=_cell_env()).returncode == 0
    assert "resuming" in (root / "logs" / "qmix-seed0.log").read_text()
    assert json.loads((cell / "results.json").read_text())["done"]


def test_a_sweep_root_holding_another_experiment_is_refused_before_anything_is_written(tmp_path):
    """Cell names leave out the shared files and parameters (the game, the data root, the
    scale), so the same --out reused with another game would skip its finished cells and put
    the other game's numbers in the table. The sweep refuses, naming the cell and both configs."""
    one = SweepSpec(configs={"qmix": ["qmix"]}, seeds=[0], gin_params=[*TINY, "online/Phase.steps = 2"])
    out = run_sweep(one, tmp_path, workers=1, print_fn=lambda s: None)
    assert out["qmix-seed0"]["status"] == "done"
    recorded = (tmp_path / "sweep.json").read_text()
    other = SweepSpec(configs={"qmix": ["qmix"]}, seeds=[0], gin_files=["envs/legacy"],
                      gin_params=[*TINY, "online/Phase.steps = 2"])
    with pytest.raises(SweepError, match=r"qmix-seed0/meta.json: the run in cell qmix-seed0 was made with gin files "
                                         r"\['qmix'\].*asks for \['qmix', 'envs/legacy'\]"):
        run_sweep(other, tmp_path, workers=1, print_fn=lambda s: None)
    assert (tmp_path / "sweep.json").read_text() == recorded and not (tmp_path / ".lock").exists()
    assert run_sweep(one, tmp_path, workers=1, print_fn=lambda s: None)["qmix-seed0"]["status"] == "skipped"


@pytest.mark.slow
def test_a_failing_cell_is_reported_and_the_others_finish(tmp_path):
    # Trainer.eval_episodes = 0 parses but cannot run: only that cell fails, with its log named
    params = [p for p in TINY if "eval_episodes" not in p] + ["online/Phase.steps = 2"]
    s = SweepSpec(configs={"qmix": ["qmix"]}, seeds=[0], gin_params=params, grid={"Trainer.eval_episodes": [1, 0]})
    lines = []
    out = run_sweep(s, tmp_path, workers=2, print_fn=lines.append)
    ok, bad = "qmix-eval_episodes=1-seed0", "qmix-eval_episodes=0-seed0"
    assert out[ok]["status"] == "done" and out[bad]["status"] == "failed"
    assert any(f"{bad}: FAILED" in line and f"logs/{bad}.log" in line for line in lines)
    assert "eval_episodes" in (tmp_path / "logs" / f"{bad}.log").read_text()


@pytest.mark.slow
def test_ray_sweep_resumes_a_killed_cell_completes_and_aggregates(tmp_path):
    pytest.importorskip("ray", reason="the ray backend needs the 'ray' extra: pip install -e '.[ray]'")
    root = tmp_path / "ray"
    s = spec(steps=20)
    killed = s.cells()[-1]
    _kill_when_checkpointed(killed, root)
    assert cell_status(killed, root) == "partial"
    out = run_sweep(s, root, backend="ray", workers=2, print_fn=lambda s: None)
    assert {r["status"] for r in out.values()} == {"done"}
    assert "resuming" in killed.log_path(root).read_text()
    from hygen.report import collect_runs

    groups = collect_runs([root])
    assert sorted(label for _, label in groups) == ["qmix", "tuned"]
    assert all(sorted(g.seeds) == [0, 1] for g in groups.values())  # pooled over seeds only


def test_sweep_command_dry_run_and_a_typo_named_before_anything_runs(tmp_path, capsys):
    from hygen.cli import main

    args = ["sweep", "--out", str(tmp_path / "s"), "--config", "q=qmix", "--config", "t=qmix_tuned",
            "--grid", "Trainer.batch_size = [2, 4]", "--seeds", "0", "1", "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "8 cells" in out and "new      q-batch_size=4-seed1  [qmix] Trainer.batch_size = 4" in out
    assert main([*args[:-1], "--gin_param", "Trainer.batch_sise = 2"]) == 2
    err = capsys.readouterr().err
    assert "sweep cell q-batch_size=2-seed0" in err and "batch_sise" in err
    assert not (tmp_path / "s").exists()  # nothing ran, nothing written
    assert main(["sweep", "--out", str(tmp_path / "none")]) == 2
    assert "no configs" in capsys.readouterr().err
