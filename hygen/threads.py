"""How many torch CPU threads a process uses: a fixed count, or one that follows the machine's load.

hygen's networks are small. On an idle 2-core machine a second torch thread makes a demo-scale
update ~1.4x faster, but whenever another process holds a core, OpenMP's threads spin-wait for
the one that was descheduled and a 2-thread update becomes ~3x slower than a 1-thread one
(benchmarks/threads.py, docs/speed.md). No fixed count is right both ways, so the default,
:class:`AdaptiveThreads` ('auto'), looks every few seconds at how much CPU *other* processes use
and gives torch the cores they leave.

Measuring the others is cheap on Linux: /proc/stat's busy jiffies over this process's cores
(its affinity mask), minus its own CPU time (which includes its threads' spin-waiting), over the wall time between two
readings. Where /proc/stat is missing (macOS, Windows) 'auto' stays at one thread, the count that
never loses much.

The price: torch's reductions round differently at different thread counts (last bits of a
float32; ~1e-6 after a few updates), so a run whose count changed with the load is not bit-for-bit
the same as a rerun. A fixed count (``--threads N``, ``Trainer.num_threads = N``) keeps
"same seed, same numbers".
"""

from __future__ import annotations

import os
import time

import gin
import torch


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    cores = _affinity()
    return max(1, len(cores) if cores else (os.cpu_count() or 1))


def _omp_cap() -> int | None:
    """OMP_NUM_THREADS as a cap for 'auto' (hygen sweep sets it to 1 for its parallel cells), if set."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n >= 1 else None


def _set_torch_threads(n: int) -> None:
    torch.set_num_threads(n)


@gin.configurable
class FixedThreads:
    """Always ``threads`` torch threads (``--threads N``): repeatable bit for bit, blind to the load."""

    adaptive = False

    def __init__(self, threads: int = 1):
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads

    def start(self) -> int:
        _set_torch_threads(self.threads)
        return self.threads

    def tick(self) -> int:
        return self.threads

    def describe(self) -> str:
        return str(self.threads)


@gin.configurable
class AdaptiveThreads:
    """Torch threads = the cores other processes leave free, re-measured every ``interval_s`` seconds.

    ``others`` = cores' worth of CPU that other processes used over the last interval (/proc/stat's
    busy time of all cores minus this process's own CPU time). The count goes down at once when
    ``others > cores - n + down_margin`` (a competing process appeared: every second spent on too
    many threads costs ~3x) and up one step only after ``up_after`` intervals in a row with
    ``others <= cores - (n + 1) + up_margin`` (the gap between the two margins is the hysteresis:
    a process that comes and goes does not flip the count each interval). Between readings,
    :meth:`tick` costs one clock read. ``max_threads`` (default: OMP_NUM_THREADS when set, else
    the cores) caps the count.
    """

    adaptive = True

    def __init__(self, max_threads: int | None = None, interval_s: float = 3.0, down_margin: float = 0.5,
                 up_margin: float = 0.25, up_after: int = 2, stat_path: str = "/proc/stat",
                 clock=time.monotonic, own_cpu=time.process_time):
        if max_threads is not None and (isinstance(max_threads, bool) or not isinstance(max_threads, int)
                                        or max_threads < 1):
            raise ValueError(f"AdaptiveThreads.max_threads must be a positive integer or None, got {max_threads!r}")
        if not (isinstance(interval_s, (int, float)) and interval_s > 0):
            raise ValueError(f"AdaptiveThreads.interval_s must be a positive number of seconds, got {interval_s!r}")
        if not 0 <= up_margin < down_margin:
            raise ValueError(f"AdaptiveThreads: need 0 <= up_margin < down_margin (the hysteresis band), "
                             f"got up_margin={up_margin!r}, down_margin={down_margin!r}")
        self.cpus = _affinity()
        self.cores = cpu_count()
        self.max_threads = min(max_threads or _omp_cap() or self.cores, self.cores)
        self.interval_s, self.down_margin, self.up_margin, self.up_after = interval_s, down_margin, up_margin, up_after
        self.stat_path, self.clock, self.own_cpu = stat_path, clock, own_cpu
        self.threads = 1
        self.changes = 0  # how often the count moved (a run whose count moved is not bit-repeatable; the
        # Trainer logs the count in use as perf/torch_threads)
        self.others = None  # the last reading, cores' worth
        self._calm = 0
        self._last = None

    def _read(self):
        """(wall, busy CPU-seconds of this process's cores, own CPU-seconds), or None without /proc/stat.

        The cores are those of the affinity mask when /proc/stat lists them all (taskset, a
        container's cpuset: load on other cores competes with nobody), else the whole machine.
        """
        try:
            with open(self.stat_path) as f:
                lines = [line.split() for line in f if line.startswith("cpu")]
        except OSError:
            return None
        rows = {r[0]: r for r in lines if len(r) >= 5}
        mine = [f"cpu{i}" for i in sorted(self.cpus or ())]
        use = [rows[k] for k in mine] if mine and all(k in rows for k in mine) else [rows.get("cpu")]
        if None in use:
            return None
        busy = 0
        for fields in use:
            ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
            busy += sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        return self.clock(), busy / hz, self.own_cpu()

    def start(self) -> int:
        """Begin at one thread (safe under load, ~1.4x slower alone) and take the first reading."""
        self.threads = 1
        _set_torch_threads(1)
        self._last = self._read()
        return 1

    def tick(self) -> int:
        """Re-measure when ``interval_s`` has passed since the last reading; returns the count in use."""
        if self._last is None or self.clock() - self._last[0] < self.interval_s:
            return self.threads
        now = self._read()
        if now is None:
            return self.threads
        wall = now[0] - self._last[0]
        others = max(0.0, ((now[1] - self._last[1]) - (now[2] - self._last[2])) / wall)
        self._last, self.others = now, others
        n = self.threads
        if n > 1 and others > self.cores - n + self.down_margin:
            n = max(1, min(n - 1, int(self.cores - others + self.down_margin)))
            self._calm = 0
        elif n < self.max_threads and others <= self.cores - (n + 1) + self.up_margin:
            self._calm += 1
            if self._calm >= self.up_after:
                n, self._calm = n + 1, 0
        else:
            self._calm = 0
        if n != self.threads:
            self.threads, self.changes = n, self.changes + 1
            _set_torch_threads(n)
        return self.threads

    def describe(self) -> str:
        return "auto"


def policy_for(spec) -> FixedThreads | AdaptiveThreads:
    """A policy from a --threads / Trainer.num_threads value: N, 'auto', or a policy instance."""
    if isinstance(spec, (FixedThreads, AdaptiveThreads)):
        return spec
    if isinstance(spec, str):
        if spec.strip().lower() == "auto":
            return AdaptiveThreads()
        try:
            spec = int(spec)
        except ValueError:
            raise ValueError(f"threads must be a positive integer or 'auto', got {spec!r}") from None
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {spec!r}")
    return FixedThreads(spec)


_POLICY: FixedThreads | AdaptiveThreads | None = None


def install(spec) -> FixedThreads | AdaptiveThreads:
    """Make ``spec`` this process's policy and apply its starting count."""
    global _POLICY
    policy = policy_for(spec)
    policy.start()
    _POLICY = policy
    return policy


def tick() -> int:
    """Let the installed policy re-measure (cheap between readings); the count in use."""
    return _POLICY.tick() if _POLICY is not None else torch.get_num_threads()


def current() -> FixedThreads | AdaptiveThreads | None:
    return _POLICY
