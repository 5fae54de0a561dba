"""Table-1-style win-rate tables: numbers checked by hand."""

from hygen.report import to_csv, to_markdown, to_text, win_rate_rows


def test_mean_std_over_seeds_and_group_means():
    columns = {"hygen": [{"3m": 1.0, "4m": 0.5}, {"3m": 0.5, "4m": 0.0}], "qmix": [{"3m": 0.25, "4m": 0.75}]}
    rows = win_rate_rows(columns, ["3m"], ["4m"])
    by = {(r["group"], r["map"]): r for r in rows}
    assert by[("source", "3m")]["hygen"] == (75.0, 25.0, 2)
    assert by[("unseen", "4m")]["hygen"] == (25.0, 25.0, 2)
    assert by[("unseen", "mean")]["qmix"] == (75.0, 0.0, 1)
    md = to_markdown(rows, ["hygen", "qmix"])
    assert "| source | 3m | 75.0 ± 25.0 | 25.0 |" in md
    assert "4m" in to_text(rows, ["hygen", "qmix"])
    assert "source,3m,75.00,25.00,2,25.00,0.00,1" in to_csv(rows, ["hygen", "qmix"])


def test_missing_map_is_a_dash():
    rows = win_rate_rows({"a": [{"3m": 1.0}]}, ["3m"], ["5m"])
    assert "| unseen | 5m | - |" in to_markdown(rows, ["a"])


def test_curves_from_results_and_svg():
    from hygen.report import curves_svg, results_curves

    results = {"source_maps": ["3m"], "eval_maps": ["3m", "4m", "5m"],
               "evals": [{"step": 0, "win_rate": {"3m": 0.0, "4m": 0.0, "5m": 0.5}},
                         {"step": 10, "win_rate": {"3m": 0.5, "4m": 1.0, "5m": 0.0}}]}
    curves = results_curves(results)
    assert curves == {"3m": [(0, 0.0), (10, 50.0)], "source mean": [(0, 0.0), (10, 50.0)],
                      "unseen mean": [(0, 25.0), (10, 50.0)]}
    svg = curves_svg(curves, title="t")
    assert svg.startswith("<svg") and svg.count("<polyline") == 3 and "unseen mean" in svg


def test_mean_curves_average_seeds_at_common_steps():
    from hygen.report import mean_curves

    def run(points):  # one source map, so the source mean is that map's win rate
        return {"source_maps": ["3m"], "eval_maps": ["3m"],
                "evals": [{"step": s, "win_rate": {"3m": w}} for s, w in points]}

    runs = {"hygen": [run([(0, 0.0), (10, 0.5), (20, 1.0)]), run([(0, 0.5), (10, 1.0)])],  # seed 2 cut off
            "offline": [run([(0, 0.25), (10, 0.25), (20, 0.25)])]}
    curves = mean_curves(runs, "source mean")
    assert curves == {"hygen": [(0, 25.0), (10, 75.0)], "offline": [(0, 25.0), (10, 25.0), (20, 25.0)]}
    assert mean_curves(runs, "unseen mean") == {}  # no unseen maps: no curve rather than an empty line
