"""Aggregate statistics over seeds and tasks, as rliable (Agarwal et al., 2021) defines them.

Scores are a matrix ``[runs, tasks]`` per method (a run is one seed; a task is one map):

- :func:`iqm`: interquartile mean over all run x task scores (the middle 50 %, as
  ``scipy.stats.trim_mean(x, 0.25)``: ``floor(n/4)`` scores cut from each end);
- :func:`stratified_bootstrap_ci`: percentile intervals where each bootstrap sample redraws
  the runs with replacement independently within each task (the tasks are the strata);
- :func:`probability_of_improvement`: P(X > Y), the Mann-Whitney U statistic per task
  (ties count one half) averaged over tasks, with a joint stratified-bootstrap interval;
- :func:`performance_profile`: the fraction of runs scoring above each threshold tau,
  averaged over tasks, with a bootstrap band.

Why not rliable itself: ``pip install rliable`` pulls arch, statsmodels, pandas, scipy, seaborn
and formulaic for what is a few lines of numpy here; the definitions follow rliable's
``metrics.py`` / ``library.py`` and tests/test_stats.py checks them on hand-computed tables.
One difference: rliable draws 50 000 bootstrap samples by default, this module 2 000 (a seeded
generator, so the same input gives the same interval).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Metric = Callable[[np.ndarray], float]

__all__ = [
    "iqm",
    "mean",
    "optimality_gap",
    "performance_profile",
    "probability_of_improvement",
    "score_matrix",
    "stratified_bootstrap_ci",
]


def _matrix(scores) -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]  # one task
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty [runs, tasks] matrix, got shape {x.shape}")
    return x


def iqm(scores) -> float:
    """Interquartile mean of every run x task score: drop the lowest and highest
    ``floor(n/4)`` of the n scores, average the rest."""
    x = np.sort(_matrix(scores), axis=None)
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def mean(scores) -> float:
    return float(_matrix(scores).mean())


def optimality_gap(scores, gamma: float = 1.0) -> float:
    """How far below ``gamma`` the scores are on average (scores above it count as gamma)."""
    return float(gamma - np.minimum(_matrix(scores), gamma).mean())


def _resample_index(n_runs: int, n_tasks: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """[reps, runs, tasks] run indices: per task, runs drawn with replacement (stratified)."""
    return rng.integers(0, n_runs, size=(reps, n_runs, n_tasks))


def _gather(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.take_along_axis(x[None], idx, axis=1)  # [reps, runs, tasks]


def stratified_bootstrap_ci(scores, metric: Metric = iqm, reps: int = 2000, confidence: float = 0.95,
                            seed: int = 0) -> tuple[float, float, float]:
    """(point estimate, low, high): the metric on the scores and its percentile interval over
    ``reps`` stratified bootstrap samples."""
    x = _matrix(scores)
    rng = np.random.default_rng(seed)
    samples = _gather(x, _resample_index(*x.shape, reps, rng))
    values = np.array([metric(s) for s in samples])
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [alpha, 100 - alpha])
    return float(metric(x)), float(low), float(high)


def _poi(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) per task (U statistic / (n m), ties one half), averaged over tasks."""
    gt = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    eq = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float((gt + 0.5 * eq).mean())


def probability_of_improvement(x_scores, y_scores, reps: int = 2000, confidence: float = 0.95,
                               seed: int = 0) -> tuple[float, float, float]:
    """(P(X > Y), low, high): the probability that a run of X beats a run of Y on a random task.

    X and Y may have different numbers of runs but must share the tasks (columns)."""
    x, y = _matrix(x_scores), _matrix(y_scores)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"probability of improvement: both methods need the same tasks, got "
                         f"{x.shape[1]} and {y.shape[1]} columns")
    rng = np.random.default_rng(seed)
    xs = _gather(x, _resample_index(*x.shape, reps, rng))
    ys = _gather(y, _resample_index(*y.shape, reps, rng))
    values = np.array([_poi(a, b) for a, b in zip(xs, ys)])
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [alpha, 100 - alpha])
    return _poi(x, y), float(low), float(high)


def paired_difference_ci(differences, reps: int = 2000, confidence: float = 0.95,
                         seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed paired differences (method A's seed s minus method B's
    seed s, both trained from the same initial networks and data): the mean and its percentile
    bootstrap interval over seeds. With 5 seeds the interval is coarse; an interval that holds 0
    says the difference is inside the noise."""
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("paired differences: need at least one seed present in both methods")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(reps, d.size))].mean(axis=1)
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [alpha, 100 - alpha])
    return float(d.mean()), float(low), float(high)


def performance_profile(scores, taus: Sequence[float], reps: int = 2000, confidence: float = 0.95,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(profile, low, high), each [len(taus)]: the fraction of runs with score > tau, averaged
    over tasks (rliable's run-score distribution), and its stratified-bootstrap band."""
    x = _matrix(scores)
    t = np.asarray(taus, dtype=np.float64)

    def profile(s: np.ndarray) -> np.ndarray:  # s: [..., runs, tasks]
        return (s[..., None] > t).mean(axis=-3).mean(axis=-2)

    rng = np.random.default_rng(seed)
    boot = profile(_gather(x, _resample_index(*x.shape, reps, rng)))  # [reps, taus]
    alpha = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [alpha, 100 - alpha], axis=0)
    return profile(x), low, high


def score_matrix(runs: Sequence[Mapping[str, float]], tasks: Sequence[str]) -> np.ndarray:
    """[runs, tasks] from per-run {task: score} dicts; every run must have every task."""
    missing = [(i, t) for i, r in enumerate(runs) for t in tasks if t not in r]
    if missing:
        i, t = missing[0]
        raise ValueError(f"run {i} has no score for task {t!r}; the statistics need every run on every task")
    return np.array([[float(r[t]) for t in tasks] for r in runs], dtype=np.float64)
