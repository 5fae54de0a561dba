"""Small shared helpers: seeding, device choice and CPU threads."""

from __future__ import annotations

import os
import random
import re

import numpy as np
import torch

from hygen import threads as _threads  # registers FixedThreads / AdaptiveThreads with gin


def check_sizes(owner: str, **sizes: object) -> None:
    """Layer sizes from gin bindings must be positive integers; a 0 would only fail deep in a forward."""
    bad = [f"{k} must be a positive integer, got {v!r}" for k, v in sizes.items()
           if isinstance(v, bool) or not isinstance(v, int) or v <= 0]
    if bad:
        raise ValueError(f"{owner}: {'; '.join(bad)}")


# Torch threads where nothing chose them: one fixed thread, for library use (a Trainer built in
# Python, the tests) and for every command that makes results (train, evaluate, collect, sweep
# cells), so the same seed gives the same numbers bit for bit: a count that changes with the load
# changes the last bits of torch's reductions (~1e-6 after a few updates), and RL runs amplify that.
# One thread also never collapses beside other jobs (docs/speed.md). `--threads auto`
# (hygen.threads.AdaptiveThreads: two threads on an idle 2-core machine, one beside other jobs) is
# opt-in, and the default of `hygen demo`, a showcase whose wall time matters more than its last bits.
DEFAULT_THREADS: int | str = 1
COMMAND_DEFAULT_THREADS: int | str = 1
DEMO_DEFAULT_THREADS: int | str = "auto"


def set_threads(n=None) -> int:
    """Set this process's torch CPU thread policy (``None``: :data:`DEFAULT_THREADS`); returns the
    starting count.

    ``n``: a fixed count, ``'auto'`` (:class:`hygen.threads.AdaptiveThreads`: the cores other
    processes leave free, re-measured as the run goes) or a policy instance. hygen's networks are
    small: on an idle 2-core machine a second thread makes a demo-scale update ~1.4x faster, but
    on a shared CPU OpenMP threads spin-wait whenever another process holds a core, and one busy
    process beside a 2-thread run makes it ~3x slower (benchmarks/threads.py, docs/speed.md).
    Call it before torch does work: the inter-op pool can only be sized then (later calls leave
    it as it is; hygen never uses it, so an adaptive policy keeps it at one).
    """
    global _THREADS_SET
    policy = _threads.install(DEFAULT_THREADS if n is None else n)
    _THREADS_SET = True
    try:
        torch.set_num_interop_threads(policy.threads if not policy.adaptive else 1)
    except RuntimeError:  # already set, or inter-op work already ran: only the intra-op count changes
        pass
    return policy.threads


def save_threads():
    """A function that puts this process's thread policy and torch's intra-op count back as they are now."""
    policy, n, was_set = _threads.current(), torch.get_num_threads(), _THREADS_SET

    def restore() -> None:
        global _THREADS_SET
        _threads._POLICY, _THREADS_SET = policy, was_set
        torch.set_num_threads(n)

    return restore


def threads_were_set() -> bool:
    """Whether :func:`set_threads` ran in this process (the CLI's --threads, a Trainer binding)."""
    return _THREADS_SET


_THREADS_SET = False


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA); return a torch.Generator seeded the same.

    The same seed gives the same numbers on the same machine. (Bit-for-bit equality
    across machines or thread counts is not promised by torch itself.)
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when available, else CPU; 'cuda' without a GPU is a clear error."""
    if isinstance(name, torch.device):
        return name
    name = str(name).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ValueError(f"unknown device {name!r}; expected one of: cpu, cuda, cuda:N, auto")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r} was asked for, but torch sees no CUDA device "
                         f"(torch {torch.__version__}); use --device cpu or auto")
    return torch.device(name)


def rng_state() -> dict:
    """Every RNG state a resumed run needs to continue the same random stream."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())  # (a checkpoint loaded with map_location=cuda moved them)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed memory instead of returning it to the OS (once per process).

    An update allocates and frees the same large tensors (tokens, activations, their
    gradients: up to ~100 MB each) every call. By default glibc serves such blocks with
    mmap and unmaps them when freed, so every update page-faults its whole working set
    back in (~15-25 % of a CPU update). Kept on the heap, the next update reuses the pages.
    No-op where glibc's mallopt is absent.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4  # <malloc.h>
        libc.mallopt(m_mmap_max, 0)  # large blocks from the heap too (mmap'd ones are unmapped on free)
        libc.mallopt(m_trim_threshold, 2**31 - 1)  # never shrink the heap
        libc.mallopt(m_top_pad, 64 << 20)  # grow it 64 MB at a time
    except (OSError, AttributeError):
        pass


_MALLOC_TUNED = False
