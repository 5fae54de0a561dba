"""hygen demo's report: the dataset's, the untrained and the trained win rates side by side."""

from __future__ import annotations

from pathlib import Path

from hygen.commands.demo import summary, where


def test_table_shows_data_untrained_and_trained_side_by_side():
    results = {"source_maps": ["3m", "5m_vs_6m"], "eval_maps": ["3m", "5m_vs_6m", "4m"], "total_steps": 600,
               "evals": [{"step": 0, "win_rate": {"3m": 0.5, "5m_vs_6m": 0.25, "4m": 1.0}},
                         {"step": 300, "win_rate": {"3m": 0.0, "5m_vs_6m": 0.0, "4m": 0.0}},
                         {"step": 600, "win_rate": {"3m": 0.75, "5m_vs_6m": 0.0, "4m": 0.5}}]}
    manifest = {m: {"qualities": {"medium": {"win_rate": w}, "expert": {"win_rate": 1.0}}}
                for m, w in (("3m", 0.4), ("5m_vs_6m", 0.1))}
    lines, markdown = summary(results, manifest, "medium", "marine-hard")
    text = "\n".join(lines)
    assert "data (medium)" in text and "untrained (step 0)" in text and "HyGen (step 600)" in text
    rows = {line.split()[1]: line.split()[2:] for line in text.splitlines()[2:] if len(line.split()) > 2}
    assert rows["3m"] == ["40.0", "50.0", "75.0"]
    assert rows["5m_vs_6m"] == ["10.0", "25.0", "0.0"]
    assert rows["4m"] == ["-", "100.0", "50.0"]  # unseen: no data, zero-shot only
    assert "| source | **mean** | 25.0 | 37.5 | 37.5 |" in markdown


def test_last_lines_say_what_the_numbers_mean_and_where_the_files_are():
    text = "\n".join(where(Path("runs/demo"), 600, 16, 250.0))
    assert "600 updates" in text and "unseen maps never were (zero-shot)" in text
    assert "16 greedy test episodes per map" in text and "up to +-12 points" in text  # 50 / sqrt(16)
    for f in ("runs/demo/table.md", "runs/demo/hygen/curves.svg", "runs/demo/hygen/results.json",
              "runs/demo/data/manifest.md", "tensorboard --logdir runs/demo/hygen"):
        assert f in text, f


def test_demo_config_gives_a_learning_curve_of_at_least_four_points():
    import gin

    from hygen.config import parse_config

    parse_config(["hygen", "tasksets/marine_hard", "data/medium", "demo"], [])
    total = gin.query_parameter("%SKILL_STEPS") + gin.query_parameter("%POLICY_STEPS")
    every = gin.query_parameter("Trainer.eval_every")
    points = {0, total} | set(range(every, total, every))  # step 0, every eval_every, the end
    assert len(points) >= 4, sorted(points)


def test_demo_collects_only_the_quality_it_trains_on(tmp_path):
    """collect_map(qualities=...): the demo's dataset part writes one quality; a later call adds another
    and the manifest entry keeps both; an unknown name is one clear error."""
    import pytest

    from hygen.collect import CollectError, collect_map, part_path

    kw = {"policy": "heuristic", "episodes": 8, "num_envs": 8, "calibration_episodes": 8, "log": lambda s: None}
    entry = collect_map("3m", tmp_path, qualities=("medium",), **kw)
    assert set(entry["qualities"]) == {"medium"}
    assert part_path(tmp_path, "3m", "medium").is_file()
    assert not part_path(tmp_path, "3m", "expert").exists() and not part_path(tmp_path, "3m", "medium-replay").exists()
    entry = collect_map("3m", tmp_path, qualities=("medium-expert",), **kw)  # brings expert, reuses medium
    assert set(entry["qualities"]) == {"expert", "medium", "medium-expert"}
    assert entry["qualities"]["medium-expert"]["episodes"] == 16
    with pytest.raises(CollectError, match=r"expected some of .*got \['medium_expert'\]"):
        collect_map("3m", tmp_path, qualities=("medium_expert",), **kw)
