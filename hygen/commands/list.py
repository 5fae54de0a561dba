"""hygen list: the names the other commands accept (maps, task sets, configs)."""

from __future__ import annotations

HELP = "list the maps, task sets and gin configs (the names --map, --task-set and --gin_file take)"
DESCRIPTION = """\
List what the other commands accept by name:
  maps       every registered map (units per side, episode limit), for --map and SOURCE_MAPS;
  task-sets  source (trained on) and unseen (zero-shot) maps, for --task-set and tasksets/*.gin;
  configs    the gin files in configs/, with each file's first comment line, for --gin_file.

examples:
  hygen list                 # all three
  hygen list configs
"""

WHAT = ("maps", "task-sets", "configs")


def add_arguments(parser) -> None:
    parser.add_argument("what", nargs="*", metavar="WHAT", help=f"any of {', '.join(WHAT)} (default: all)")


def _sides(units) -> str:
    return " + ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in units)


def map_lines() -> list[str]:
    from hygen.envs.maps import MAPS

    width = max(len(m) for m in MAPS)
    return [f"  {name:<{width}}  {_sides(s.allies)} vs {_sides(s.enemies)}, {s.episode_limit} steps"
            for name, s in MAPS.items()]


def task_set_lines() -> list[str]:
    from hygen.envs.maps import TASK_SETS

    out = []
    for name, ts in TASK_SETS.items():
        out += [f"  {name}  (gin: tasksets/{name.replace('-', '_')})",
                f"    source: {', '.join(ts.source)}", f"    unseen: {', '.join(ts.unseen)}"]
    return out


def config_lines() -> list[str]:
    from hygen.config import CONFIG_DIR

    files = sorted(CONFIG_DIR.rglob("*.gin"), key=lambda f: (len(f.relative_to(CONFIG_DIR).parts), str(f)))
    names = [str(f.relative_to(CONFIG_DIR).with_suffix("")) for f in files]
    width = max(map(len, names), default=0)
    out = []
    for f, name in zip(files, names):
        first = next((line.lstrip("# ").strip() for line in f.read_text().splitlines() if line.startswith("#")), "")
        out.append(f"  {name:<{width}}  {first}".rstrip())
    return out


def run(args) -> int:
    what = args.what or list(WHAT)
    unknown = [w for w in what if w not in WHAT]
    if unknown:
        raise ValueError(f"nothing called {', '.join(map(repr, unknown))} to list; expected any of {', '.join(WHAT)}")
    sections = {"maps": ("maps (name: allies vs enemies, episode limit)", map_lines),
                "task-sets": ("task sets", task_set_lines),
                "configs": ("configs (--gin_file NAME; combine a method, a task set and a data quality)",
                            config_lines)}
    for i, key in enumerate(dict.fromkeys(what)):
        title, lines = sections[key]
        print(("\n" if i else "") + title + ":")
        print("\n".join(lines()))
    return 0
