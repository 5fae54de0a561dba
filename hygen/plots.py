"""Figures for reports (matplotlib, PNG and SVG): learning curves with interval bands, per-map
bars, ablation curves (the paper's Fig. 5) and performance profiles.

Curves are the mean (or IQM) over seeds; the band is the 95 % stratified-bootstrap interval over
the runs (hygen.stats). Legends sit outside the axes, to the right, so they never cover data.
matplotlib is imported inside the functions: ``import hygen`` does not need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hygen import stats

__all__ = ["ablation_curves", "learning_curves", "per_map_bars", "performance_profile_plot", "save"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def save(fig, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg``; close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    # the same figure gives the same bytes (no date, fixed SVG ids), so regenerated docs diff only
    # where a number changed
    with _plt().rc_context({"svg.hashsalt": "hygen"}):
        for p in paths:
            meta = {"Date": None} if p.suffix == ".svg" else {"Software": None}
            fig.savefig(p, dpi=120, bbox_inches="tight", metadata=meta)
    _plt().close(fig)
    return paths


def _curve(runs: Sequence[Mapping], maps: Sequence[str], metric, reps: int) -> tuple[np.ndarray, ...]:
    """Steps every run evaluated, and per step (value, low, high) in % over runs x maps."""
    evals = [{e["step"]: e["win_rate"] for e in r.get("evals", [])} for r in runs]
    steps = sorted(set.intersection(*(set(e) for e in evals))) if evals else []
    steps = [s for s in steps if all(all(m in e[s] for m in maps) for e in evals)]
    out = []
    for s in steps:
        x = 100 * np.array([[e[s][m] for m in maps] for e in evals])
        out.append(stats.stratified_bootstrap_ci(x, metric, reps=reps))
    arr = np.array(out).reshape(-1, 3)
    return np.array(steps), arr[:, 0], arr[:, 1], arr[:, 2]


def learning_curves(groups: Mapping[str, Sequence[Mapping]], panels: Mapping[str, Sequence[str]],
                    title: str = "", estimator: str = "mean", reps: int = 500, highlight: str | None = None):
    """One panel per entry of ``panels`` (name -> maps averaged in it, e.g. {"3m": ["3m"],
    "unseen mean": [...]}); one line per group (label -> results.json dicts, one per seed), the
    ``estimator`` ("mean" or "iqm") over runs x maps with its 95 % bootstrap band."""
    plt = _plt()
    metric = stats.iqm if estimator == "iqm" else stats.mean
    n = len(panels)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharey=True)
    for ax, (name, maps) in zip(axes.flat, panels.items()):
        for i, (label, runs) in enumerate(groups.items()):
            steps, y, lo, hi = _curve(runs, maps, metric, reps)
            if not len(steps):
                continue
            color = _COLORS[i % len(_COLORS)]
            lw = 2.6 if label == highlight else 1.6
            ax.plot(steps, y, color=color, lw=lw, marker="o", ms=3, label=f"{label} (n={len(runs)})")
            ax.fill_between(steps, lo, hi, color=color, alpha=0.18, lw=0)
        ax.set_title(name)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.set_xlabel("learner updates")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"win rate (%), {estimator}")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False,
               title=f"{estimator} over seeds, 95 % CI band")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def ablation_curves(groups: Mapping[str, Sequence[Mapping]], source: Sequence[str], unseen: Sequence[str],
                    reference: str | None = None, title: str = "", reps: int = 500):
    """The paper's Fig. 5: mean win rate on the source and on the unseen maps over training, one
    line per variant, the reference method drawn thicker."""
    panels = {"source maps (mean)": list(source)}
    if unseen:
        panels["unseen maps (mean)"] = list(unseen)
    return learning_curves(groups, panels, title=title, highlight=reference, reps=reps)


def per_map_bars(groups: Mapping[str, Sequence[Mapping[str, float]]], maps: Sequence[str], title: str = "",
                 n_source: int | None = None):
    """Final win rate per map: one bar per group (mean over seeds), error bars one std. With
    ``n_source``, a dashed line separates the first ``n_source`` (source) maps from the unseen ones."""
    plt = _plt()
    k = max(len(groups), 1)
    width = 0.8 / k
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(maps) * max(1, k / 2)), 3.6))
    x = np.arange(len(maps))
    for i, (label, seeds) in enumerate(groups.items()):
        vals = np.array([[100 * s.get(m, np.nan) for m in maps] for s in seeds])
        ax.bar(x + (i - (k - 1) / 2) * width, np.nanmean(vals, axis=0), width, yerr=np.nanstd(vals, axis=0),
               color=_COLORS[i % len(_COLORS)], capsize=2, label=f"{label} (n={len(seeds)})")
    if n_source and n_source < len(maps):
        ax.axvline(n_source - 0.5, color="gray", ls="--", lw=1)
        ax.text(n_source - 0.6, 103, "source", ha="right", va="top", color="gray")
        ax.text(n_source - 0.4, 103, "unseen", ha="left", va="top", color="gray")
    ax.set_xticks(x, maps, rotation=30, ha="right")
    ax.set_ylabel("final win rate (%)")
    ax.set_ylim(0, 108)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="mean ± std over seeds")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def performance_profile_plot(groups: Mapping[str, np.ndarray], title: str = "", reps: int = 1000):
    """Fraction of runs (x maps) with final win rate above tau, with a bootstrap band (rliable's
    performance profile). ``groups``: label -> [runs, maps] scores in %."""
    plt = _plt()
    taus = np.linspace(0, 100, 101)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i, (label, x) in enumerate(groups.items()):
        prof, lo, hi = stats.performance_profile(x, taus, reps=reps)
        color = _COLORS[i % len(_COLORS)]
        ax.plot(taus, prof, color=color, lw=1.8, label=label)
        ax.fill_between(taus, lo, hi, color=color, alpha=0.18, lw=0)
    ax.set_xlabel(r"win rate threshold $\tau$ (%)")
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
