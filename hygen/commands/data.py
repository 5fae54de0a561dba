"""hygen data: inspect and validate offline datasets in ODIS's HDF5 format."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hygen.buffers.offline import (
    QUALITIES,
    DatasetError,
    OfflineDataset,
    expand_paths,
    infer_map_name,
    validate_file,
)
from hygen.cli import add_threads_argument
from hygen.envs.maps import get_map

HELP = "inspect (info) or check (validate) offline datasets in ODIS's HDF5 format"
DESCRIPTION = """\
Inspect or check offline datasets (ODIS HDF5: <root>/<map>/<quality>/[<run>/]part_<k>.h5).
A PATH may be a file or a directory (all .h5 files below it). The map is read from the
path (<map>/<quality>) or, failing that, from the shapes; --map overrides both.

examples:
  hygen data info data/smac/3m/medium/part_0.h5
  hygen data info data/smac/3m --json
  hygen data validate data/smac --map 3m
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="episodes, map, agents, lengths, win rate, returns, shapes")
    validate = sub.add_parser("validate", help="check files against their map's layout; exit 1 if invalid")
    for p in (info, validate):
        p.add_argument("paths", nargs="+", metavar="PATH", help=".h5 file or directory")
        p.add_argument("--map", default=None, help="map name (default: from the path or the shapes)")
        add_threads_argument(p)
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    try:
        files = expand_paths(args.paths)
    except DatasetError as e:
        print(f"hygen data: error: {e}", file=sys.stderr)
        return 2
    return _info(files, args.map, args.json) if args.data_command == "info" else _validate(files, args.map)


def _quality(path: Path) -> str:
    names = {q for qs in QUALITIES.values() for q in qs} | set(QUALITIES)
    names |= {q.replace("-", "_") for q in names}
    return next((p for p in reversed(path.parts[:-1]) if p in names), "?")


def _info(files: list[Path], map_name: str | None, as_json: bool) -> int:
    rows, failed = [], 0
    for path in files:
        try:
            ds = OfflineDataset(path, map_name or infer_map_name(path), max_episodes=None)
        except DatasetError as e:
            print(f"hygen data: error: {e}", file=sys.stderr)
            failed += 1
            continue
        rows.append(_row(str(path), _quality(path), ds))
    by_map: dict[str, list[dict]] = {}
    for r in rows:
        by_map.setdefault(r["map"], []).append(r)
    totals = [_total(m, rs) for m, rs in by_map.items() if len(rs) > 1]
    if as_json:
        print(json.dumps({"files": rows, "totals": totals}, indent=2))
    elif rows:  # (no table at all when no file could be read)
        _print_table(rows + totals)
    return 1 if failed else 0


def _row(name: str, quality: str, ds: OfflineDataset) -> dict:
    spec = get_map(ds.map_name)
    s = ds.stats()
    return {
        "file": name, "map": ds.map_name, "quality": quality, "episodes": s["episodes"],
        "agents": spec.n_agents, "enemies": spec.n_enemies, "steps": s["steps"],
        "length_mean": s["length_mean"], "length_min": s["length_min"], "length_max": s["length_max"],
        "win_rate": s["win_rate"], "return_mean": s["return_mean"], "return_std": s["return_std"],
        "return_min": s["return_min"], "return_max": s["return_max"],
        "shapes": {"obs": spec.layout.obs_shape, "state": spec.layout.state_shape,
                   "n_actions": spec.n_actions, "T": spec.episode_limit + 1},
        "dropped": s["dropped"],
    }


def _total(map_name: str, rows: list[dict]) -> dict:
    n = sum(r["episodes"] for r in rows)
    w = [r["episodes"] / n for r in rows]
    mean = sum(wi * r["return_mean"] for wi, r in zip(w, rows))
    # pooled std from per-file means and stds (population form; fine for a summary)
    var = sum(wi * (r["return_std"] ** 2 + (r["return_mean"] - mean) ** 2) for wi, r in zip(w, rows))
    return {
        "file": f"TOTAL ({len(rows)} files)", "map": map_name, "quality": "",
        "episodes": n, "agents": rows[0]["agents"], "enemies": rows[0]["enemies"],
        "steps": sum(r["steps"] for r in rows), "length_mean": sum(r["steps"] for r in rows) / n,
        "length_min": min(r["length_min"] for r in rows), "length_max": max(r["length_max"] for r in rows),
        "win_rate": sum(wi * r["win_rate"] for wi, r in zip(w, rows)), "return_mean": mean,
        "return_std": var ** 0.5, "return_min": min(r["return_min"] for r in rows),
        "return_max": max(r["return_max"] for r in rows), "shapes": rows[0]["shapes"],
        "dropped": sum(r["dropped"] for r in rows),
    }


def _print_table(rows: list[dict]) -> None:
    head = ("file", "map", "quality", "episodes", "agents", "length mean [min,max]", "win rate",
            "return mean±std [min,max]", "obs/state/A/T")
    body = [(r["file"], r["map"], r["quality"], str(r["episodes"]), str(r["agents"]),
             f"{r['length_mean']:.1f} [{r['length_min']},{r['length_max']}]", f"{100 * r['win_rate']:.1f} %",
             f"{r['return_mean']:.2f}±{r['return_std']:.2f} [{r['return_min']:.2f},{r['return_max']:.2f}]",
             "{obs}/{state}/{n_actions}/{T}".format(**r["shapes"])) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    for line in (head, tuple("-" * w for w in widths), *body):
        print("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip())
    print("length = environment steps per episode (filled rows - 1)")


def _validate(files: list[Path], map_name: str | None) -> int:
    bad = 0
    for path in files:
        try:
            name, n, problems = validate_file(path, map_name)
        except DatasetError as e:
            msg = str(e)
            print(f"INVALID {msg if str(path) in msg else f'{path}: {msg}'}")
            bad += 1
            continue
        if problems:
            bad += 1
            print(f"INVALID {path} ({name}, {n} episodes):")
            for p in problems:
                print(f"  - {p}")
        else:
            print(f"ok      {path} ({name}, {n} episodes)")
    print(f"{len(files) - bad}/{len(files)} file(s) valid")
    return 1 if bad else 0
