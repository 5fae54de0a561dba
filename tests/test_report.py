"""Table-1-style win-rate tables: numbers checked by hand."""

from pathlib import Path

import pytest

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


# --- hygen report: runs and sweeps aggregated ------------------------------------------------

def _fake_run(root, name, seed, final, files=("hygen", "tasksets/marine_hard", "data/medium"), params=(),
              source=("3m",), evals=None):
    import json

    d = root / name
    d.mkdir(parents=True)
    maps = list(final)
    evals = evals or [{"step": 0, "win_rate": {m: 0.0 for m in maps}, "return_mean": {m: 0.0 for m in maps}},
                      {"step": 10, "win_rate": dict(final), "return_mean": {m: 1.0 for m in maps}}]
    (d / "meta.json").write_text(json.dumps({"gin_files": list(files), "gin_params": list(params), "seed": seed}))
    (d / "results.json").write_text(json.dumps({
        "seed": seed, "done": True, "source_maps": list(source), "eval_maps": maps, "evals": evals,
        "final": {"step": evals[-1]["step"], "win_rate": dict(final), "return_mean": evals[-1]["return_mean"]}}))
    return d


def test_report_reproduces_a_known_iqm_and_interval(tmp_path, capsys):
    import json

    from hygen.cli import main

    # hygen: seeds with 3m win rates 0 and 1 -> IQM of two scores = their mean, 50 %; a bootstrap
    # sample of two runs has mean 0, 50 or 100 % (p 1/4, 1/2, 1/4): the 95 % interval is [0, 100].
    runs = [_fake_run(tmp_path, "h0", 0, {"3m": 0.0, "4m": 0.25}), _fake_run(tmp_path, "h1", 1, {"3m": 1.0, "4m": 0.75}),
            # same method, another --gin_param: never pooled with h0/h1
            _fake_run(tmp_path, "g0", 0, {"3m": 0.5, "4m": 0.5}, params=["HyGenLearner.td_lambda = 0.5"]),
            _fake_run(tmp_path, "o0", 0, {"3m": 0.5, "4m": 0.0}, files=("hygen", "no_online", "tasksets/marine_hard",
                                                                          "data/medium"))]
    out = tmp_path / "rep"
    assert main(["report", *map(str, runs), "--out", str(out), "--reference", "hygen", "--no-plots",
                 "--reps", "4000"]) == 0
    md = (out / "report.md").read_text()
    assert "| tasks | map | hygen | hygen (1) | hygen+no_online |" in md
    assert "| source | 3m | 50.0 ± 50.0 | 50.0 | 50.0 |" in md
    assert "| source | **IQM [95% CI]** | 50.0 [0.0, 100.0] | 50.0 [50.0, 50.0] | 50.0 [50.0, 50.0] |" in md
    assert "| unseen | 4m | 50.0 ± 25.0 | 50.0 | 0.0 |" in md
    summary = json.loads((out / "summary.json").read_text())["blocks"]["marine_hard, medium"]["methods"]
    assert summary["hygen"]["seeds"] == [0, 1] and summary["hygen (1)"]["seeds"] == [0]
    assert "- hygen (1): HyGenLearner.td_lambda=0.5" in md
    # P(hygen > no_online): 3m: 0 < 0.5, 1 > 0.5 -> 0.5; 4m: 0.25 > 0 and 0.75 > 0 -> 1.0
    assert "| hygen+no_online | 0.50 [0.00, 1.00] | 1.00 [1.00, 1.00] |" in md
    tex = (out / "table.tex").read_text()
    assert "\\begin{tabular}{llrrr}" in tex and "50.0 $\\pm$ 50.0" in tex
    assert '"marine_hard, medium",source,3m,hygen,50.00,50.00,2' in (out / "table.csv").read_text()
    me = json.loads((out / "marl_eval.json").read_text())["hygen_smac"]
    assert me["4m"]["hygen (marine_hard, medium)"]["run_1"]["absolute_metrics"]["win_rate"] == [0.75]
    assert me["4m"]["hygen (marine_hard, medium)"]["run_1"]["step_1"]["step_count"] == 10


def test_report_table2_puts_the_reference_last_and_writes_figures(tmp_path):
    from hygen.cli import main

    runs = [_fake_run(tmp_path, f"h{s}", s, {"3m": 0.5 + 0.25 * s, "4m": 0.5}) for s in (0, 1)]
    runs += [_fake_run(tmp_path, f"f{s}", s, {"3m": 0.25, "4m": 0.25 * s},
                       files=("hygen", "tasksets/marine_hard", "ablations/fixed_ratio_50", "data/medium"))
             for s in (0, 1)]
    out = tmp_path / "rep"
    assert main(["report", *map(str, runs), "--out", str(out), "--layout", "table2", "--reference", "hygen",
                 "--reps", "200"]) == 0
    assert "| tasks | map | hygen+fixed_ratio_50 | hygen |" in (out / "report.md").read_text()
    for stem in ("curves", "ablation", "bars", "profile"):
        for ext in ("png", "svg"):
            assert (out / f"{stem}_marine_hard__medium.{ext}").stat().st_size > 1000, (stem, ext)


def test_report_without_finished_runs_says_so(tmp_path, capsys):
    import json

    from hygen.cli import main

    d = _fake_run(tmp_path, "h0", 0, {"3m": 0.5})
    res = json.loads((d / "results.json").read_text())
    (d / "results.json").write_text(json.dumps({**res, "done": False}))
    assert main(["report", str(d), "--no-plots"]) == 2
    err = capsys.readouterr()
    assert "left out (not finished)" in err.out and "--include-unfinished" in err.err


def test_report_pairs_seeds_of_the_same_number(tmp_path):
    import json

    from hygen.cli import main

    # hygen seeds 0, 1, 2; offline-only seeds 0 and 2 only: pairs (0, 0) and (2, 2).
    # source (3m): 1.0 - 0.5 = +50 points, 0.0 - 0.5 = -50 -> mean 0; unseen (4m): +25 and +75 -> mean +50
    runs = [_fake_run(tmp_path, "h0", 0, {"3m": 1.0, "4m": 0.5}), _fake_run(tmp_path, "h1", 1, {"3m": 1.0, "4m": 1.0}),
            _fake_run(tmp_path, "h2", 2, {"3m": 0.0, "4m": 1.0})]
    files = ("hygen", "no_online", "tasksets/marine_hard", "data/medium")
    runs += [_fake_run(tmp_path, "o0", 0, {"3m": 0.5, "4m": 0.25}, files=files),
             _fake_run(tmp_path, "o2", 2, {"3m": 0.5, "4m": 0.25}, files=files)]
    out = tmp_path / "rep"
    assert main(["report", *map(str, runs), "--out", str(out), "--reference", "hygen", "--no-plots"]) == 0
    md = (out / "report.md").read_text()
    assert "| hygen+no_online | 0, 2 | +0.0 [-50.0, +50.0] (+50.0, -50.0) | +50.0 [+25.0, +75.0] (+25.0, +75.0) |" in md
    rows = json.loads((out / "summary.json").read_text())["blocks"]["marine_hard, medium"]["paired_differences"]["rows"]
    assert rows[0]["seeds"] == [0, 2] and rows[0]["unseen"]["per_seed"] == [25.0, 75.0]


def test_reproduce_writes_the_results_json_schema(tmp_path):
    """benchmarks/reproduce.py --results-json: issue 15's schema, numbers from the runs."""
    import importlib.util
    import json

    from hygen import report as rp

    spec = importlib.util.spec_from_file_location("reproduce", Path(__file__).parents[1] / "benchmarks" / "reproduce.py")
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    diag = {"3m": {"offline_value_corr": 0.5, "online_win_rate": 0.25}}
    evals = [{"step": 10, "win_rate": {"3m": 1.0, "4m": 0.5}, "return_mean": {"3m": 1.0, "4m": 1.0},
              "diagnostics": diag}]
    runs = [_fake_run(tmp_path, "h0", 0, {"3m": 1.0, "4m": 0.5}, evals=evals),
            _fake_run(tmp_path, "h1", 1, {"3m": 1.0, "4m": 0.5},
                      evals=[{**evals[0], "diagnostics": {"3m": {"offline_value_corr": 0.7}}}])]
    for d in runs:
        (d / "operative_config.gin").write_text("Trainer.eval_episodes = 32\n")
    groups = rp.collect_runs(runs)
    block, label = next(iter(groups))
    summary = {label: {g: rp.aggregate(groups[(block, label)], maps) for g, maps in (("source", ["3m"]), ("unseen", ["4m"]))}}
    out = tmp_path / "results.json"
    reproduce.write_results_json(out, "cpu", [0, 1], groups, block, [label], summary, ["3m"])
    got = json.loads(out.read_text())
    assert got["scale"] == "cpu" and got["seeds"] == [0, 1] and got["test_episodes"] == 32
    m = got["methods"][label]
    assert m["source"] == {"iqm": 100.0, "ci": [100.0, 100.0]} and m["unseen"]["iqm"] == 50.0
    assert m["value_return_corr"] == pytest.approx(0.6)  # mean over seeds of the last evaluation's
    (runs[1] / "operative_config.gin").write_text("Trainer.eval_episodes = 16\n")
    with pytest.raises(SystemExit, match="do not agree on Trainer.eval_episodes"):
        reproduce.write_results_json(out, "cpu", [0, 1], groups, block, [label], summary, ["3m"])


def _agg(iqm, low, high):
    return {"iqm": iqm, "iqm_low": low, "iqm_high": high}


@pytest.mark.parametrize("ref, other, paired, expected", [
    (_agg(60, 50, 70), _agg(30, 20, 40), None, "above"),                       # intervals apart
    (_agg(30, 20, 40), _agg(60, 50, 70), {"low": -40, "high": -20}, "below"),
    (_agg(50, 30, 70), _agg(40, 20, 60), {"low": 2, "high": 18}, "tends above"),  # overlap, paired > 0
    (_agg(40, 20, 60), _agg(50, 30, 70), {"low": -18, "high": -2}, "tends below"),
    (_agg(50, 30, 70), _agg(40, 20, 60), {"low": -5, "high": 25}, "undecided"),   # paired holds 0
    (_agg(0, 0, 0), _agg(0, 0, 0), {"low": 0, "high": 0}, "undecided"),           # all-zero maps
    (_agg(40, 40, 60), _agg(30, 20, 40), None, "undecided"),                    # touching intervals overlap
    (None, _agg(30, 20, 40), None, "undecided"),
    ({**_agg(60, 50, 70), "n": 1}, _agg(30, 20, 40), None, "undecided"),     # one seed: no interval
    (_agg(50, 30, 70), _agg(40, 20, 60), {"low": 5, "high": 5, "per_seed": [5]}, "undecided"),
])
def test_decision_rule_of_the_table2_protocol(ref, other, paired, expected):
    from hygen.report import decide

    assert decide(ref, other, paired) == expected


def test_a_claim_is_reproduced_only_when_above_every_method_it_names():
    from hygen.report import claim_verdict

    assert claim_verdict(["above", "above", "above"]) == "reproduced"
    assert claim_verdict(["above", "tends above", "above"]) == "undecided"
    assert claim_verdict(["above", "below"]) == "refuted"
    assert claim_verdict(["tends below"]) == "undecided"
    assert claim_verdict([]) == "undecided"


def test_reproduce_decides_each_claim_of_the_paper():
    """decide_claims: the claims whose methods ran, HyGen's standing per method, the verdict."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce", Path(__file__).parents[1] / "benchmarks" / "reproduce.py")
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    hi, lo = _agg(60, 50, 70), _agg(30, 20, 40)
    summary = {"HyGen": {"source": hi, "unseen": hi}, "offline-only (R=1)": {"source": hi, "unseen": lo},
               "fixed ratio 20%": {"source": lo, "unseen": lo}, "fixed ratio 50%": {"source": lo, "unseen": hi},
               "fixed ratio 80%": {"source": lo, "unseen": lo}}
    claims = {c["claim"][:20]: c for c in reproduce.decide_claims(summary, {})}
    assert len(claims) == 2  # refinement and CQL were not run
    online = next(c for k, c in claims.items() if k.startswith("Online"))
    assert online["verdict"] == "reproduced" and online["standing"]["offline-only (R=1)"]["source"] == "undecided"
    ratio = next(c for k, c in claims.items() if "ratio" in c["claim"])
    assert ratio["verdict"] == "undecided"  # above 20 % and 80 %, level with 50 %
    summary["fixed ratio 50%"]["unseen"] = _agg(90, 80, 95)
    ratio = next(c for c in reproduce.decide_claims(summary, {}) if "ratio" in c["claim"])
    assert ratio["verdict"] == "refuted" and ratio["standing"]["fixed ratio 50%"]["unseen"] == "below"
    assert any(line.startswith("- **refuted**") for line in reproduce.claim_paragraphs([ratio]))


def test_last_change_measures_how_far_final_win_rates_move():
    """Two seeds x two maps, checked by hand: changes |0.75-0.25| = 50, |0-0| = 0 (seed 0) and
    |0.1-0.3| = 20, |1-0| = 100 points (seed 1): mean 42.5, two of four pairs moved >= 50."""
    from hygen.report import RunGroup, last_change

    def run(seed, prev, last):
        return {"seed": seed, "evals": [{"win_rate": prev}, {"win_rate": last}]}

    g = RunGroup("m", "b", runs=[run(0, {"a": 0.25, "b": 0.0}, {"a": 0.75, "b": 0.0}),
                                 run(1, {"a": 0.3, "b": 0.0}, {"a": 0.1, "b": 1.0})])
    out = last_change(g, ["a", "b"])
    assert out["mean"] == pytest.approx(42.5) and out["flips"] == pytest.approx(0.5)
    assert last_change(g, ["a"])["mean"] == pytest.approx(35.0)
    g.runs[0]["evals"] = g.runs[0]["evals"][:1]
    assert last_change(g, ["a"]) is None  # one evaluation: nothing to compare


@pytest.mark.parametrize("game, label", [("legacy", "legacy game"), ("calibrated", "calibrated game"),
                                         ("varied", "varied game"), (None, "legacy game"),
                                         ("other", "mechanics collisions, ordered_fire")])
def test_reproduce_labels_the_table_with_the_runs_game(tmp_path, game, label):
    """The table says which game its runs played, from their meta.json: a named game by its
    name, a run recorded before the record existed as the legacy game, any other by its mechanics."""
    import importlib.util
    import json

    from hygen.envs import CALIBRATED_GAME, LEGACY_GAME, VARIED_GAME

    spec = importlib.util.spec_from_file_location("reproduce", Path(__file__).parents[1] / "benchmarks" / "reproduce.py")
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    games = {"legacy": LEGACY_GAME, "calibrated": CALIBRATED_GAME, "varied": VARIED_GAME,
             "other": {**LEGACY_GAME, "collisions": True, "ordered_fire": True}}
    meta = {"seed": 0} if game is None else {"seed": 0, "game": {"backend": "sim", **games[game]}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert label in reproduce.game_label([tmp_path])
