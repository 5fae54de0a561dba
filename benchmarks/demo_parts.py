"""Where `hygen demo`'s time goes: the demo with timers around its parts (wall and CPU seconds).

    python benchmarks/demo_parts.py --run_dir /tmp/demo_parts [any other hygen demo option]

Wraps hygen.collect.collect_map (datasets), Trainer._collect (online collection),
HyGenLearner.update, Trainer._evaluate (evaluations with their diagnostics), checkpoints and
set-up, runs ``hygen demo`` with the given options, and prints per part
[wall seconds, CPU seconds of this process, calls] as JSON on stderr at exit, with the load
average. CPU seconds are the figure to compare on a shared machine: at one thread they are about
the wall time the part would take on an idle core.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections import defaultdict

TIMES: dict = defaultdict(lambda: [0.0, 0.0, 0])


def timed(owner, name: str, key: str) -> None:
    f = getattr(owner, name)

    def wrapper(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            r = TIMES[key]
            r[0] += time.perf_counter() - t
            r[1] += time.process_time() - c
            r[2] += 1

    setattr(owner, name, wrapper)


def main() -> int:
    from hygen import collect, trainer
    from hygen.cli import main as hygen_main
    from hygen.learners.hygen import HyGenLearner

    timed(collect, "collect_map", "datasets")
    timed(trainer.Trainer, "__init__", "trainer set-up")
    timed(trainer.Trainer, "_collect", "online collection")
    timed(trainer.Trainer, "_evaluate", "evaluations (with diagnostics)")
    timed(trainer.Trainer, "_save_checkpoint", "checkpoints")
    timed(HyGenLearner, "update", "updates")
    t0, c0 = time.perf_counter(), time.process_time()

    def report() -> None:
        TIMES["total"] = [time.perf_counter() - t0, time.process_time() - c0, 1]
        print(json.dumps({"parts": TIMES, "load_average": os.getloadavg()}, indent=1), file=sys.stderr)

    atexit.register(report)
    return hygen_main(["demo", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
