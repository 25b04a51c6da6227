"""The sweep's charts (matplotlib, Agg backend, written atomically):

curves.png   validation bpb against training tokens, every cell one line
bars.png     final validation bpb per group, error bars = standard deviation over seeds
scaling.png  size sweeps (>= 3 distinct non-embedding parameter counts): final val loss against
             non-embedding parameters N and against training compute C, log-log, with the fitted
             L = E + A / x^alpha
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_open
from .cells import Cell, short
from .fit import fit_power_law


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    _plt().close(fig)
    return path.name


def plot_curves(cells: list[Cell], out: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for c in cells:
        rows = [json.loads(x) for x in (out / "cells" / c.name / "metrics.jsonl").read_text().splitlines() if x]
        rows = [r for r in rows if r.get("val_bpb") is not None and r["step"] > 0]
        ax.plot([r["tokens"] for r in rows], [r["val_bpb"] for r in rows], marker="o", markersize=2, label=c.label)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("validation bits per byte")
    ax.set_title("validation bpb during training")
    ax.grid(alpha=0.3)
    if len(cells) <= 20:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out / "curves.png")


def plot_bars(rows: list[dict], axes: list[str], out: Path) -> str:
    plt = _plt()
    shown = [k for k in axes if k != "seed"]
    groups: dict[tuple, dict] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in shown), r)
    labels = [", ".join(f"{k}={short(v)}" for k, v in zip(shown, key)) or "base" for key in groups]
    means = [g["mean_final_val_bpb"] for g in groups.values()]
    errs = [g["std_final_val_bpb"] or 0.0 for g in groups.values()]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(labels) + 2), 4.5))
    ax.bar(range(len(labels)), means, yerr=errs, capsize=4, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    lo = min(m - e for m, e in zip(means, errs))
    ax.set_ylim(lo * 0.97, max(m + e for m, e in zip(means, errs)) * 1.01)
    ax.set_ylabel("final validation bpb")
    ax.set_title("final validation bpb (error bars: std over seeds)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, out / "bars.png")


def plot_scaling(rows: list[dict], out: Path) -> dict:
    """-> {'parameters': fit, 'compute': fit} for size sweeps (and scaling.png), else {}."""
    if len({r["non_embedding_params"] for r in rows}) < 3:
        return {}
    import numpy as np

    plt = _plt()
    L = [r["final_val_loss"] for r in rows]
    fits = {}
    fig, axs = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, name, key, x_name in (
        (axs[0], "parameters", "non_embedding_params", "non-embedding parameters N"),
        (axs[1], "compute", "flops", "training compute C (FLOPs)"),
    ):
        x = [r[key] for r in rows]
        ax.loglog(x, L, "o", label="cells")
        if len(set(x)) >= 3:
            fit = fits[name] = fit_power_law(x, L)
            grid = np.geomspace(min(x), max(x), 100)
            ax.loglog(grid, fit(grid), "-", label=f"E + A/x^α: α={fit.alpha:.3f}±{fit.alpha_err:.2g}")
        ax.set_xlabel(x_name)
        ax.set_ylabel("final validation loss (nats)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("scaling: final val loss")
    fig.tight_layout()
    _save(fig, out / "scaling.png")
    return fits
