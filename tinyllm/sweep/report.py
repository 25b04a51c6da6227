"""A finished sweep's reports: results.csv, results.md, the plots and the scaling fit.

results.csv has one row per cell: cell, every varied setting, parameters, tokens, FLOPs, wall time,
tokens/s, final and best val loss and val bpb, and, for the cell's group (the cells that differ only
in seed), the number of seeds and the mean and sample standard deviation of final val bpb and loss.
results.md has the groups as a table sorted by mean final val bpb (best marked), then every cell.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from ..io import atomic_open
from .cells import Cell, short
from .spec import SweepSpec

CELL_COLUMNS = (
    "params",
    "non_embedding_params",
    "tokens",
    "flops",
    "wall_s",
    "tokens_per_sec",
    "final_val_loss",
    "best_val_loss",
    "final_val_bpb",
    "best_val_bpb",
)
GROUP_COLUMNS = ("seeds", "mean_final_val_bpb", "std_final_val_bpb", "mean_final_val_loss", "std_final_val_loss")


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def collect_rows(cells: list[Cell], out: Path) -> list[dict]:
    """One row per cell, from its result.json, with its group's seed statistics."""
    rows = []
    for c in cells:
        r = json.loads((out / "cells" / c.name / "result.json").read_text())
        rows.append({"cell": c.name, **c.varied, **{k: r.get(k) for k in CELL_COLUMNS}})
    axes = list(cells[0].varied) if cells else []
    for row in rows:
        group = [g for g in rows if all(g[k] == row[k] for k in axes if k != "seed")]
        bpb = mean_std([g["final_val_bpb"] for g in group])
        loss = mean_std([g["final_val_loss"] for g in group])
        row.update(zip(GROUP_COLUMNS, (len(group), *bpb, *loss)))
    return rows


def group_key(row: dict, axes: list[str]) -> tuple:
    return tuple(row[k] for k in axes if k != "seed")


def write_csv(rows: list[dict], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_open(path) as f:
        f.write(buf.getvalue())


def fmt(v, spec: str = ".4f") -> str:
    if v is None:
        return "—"
    return format(v, spec)


def markdown(spec: SweepSpec, cells: list[Cell], rows: list[dict], fits: dict, plots: list[str]) -> str:
    axes = list(cells[0].varied) if cells else []
    shown = [k for k in axes if k != "seed"]
    budget = (
        f"{spec.budget_tokens:,} training tokens per cell"
        if spec.budget_tokens is not None
        else f"{spec.budget_flops:.3g} training FLOPs per cell"
        if spec.budget_flops is not None
        else "max_iters per cell as set"
    )
    lines = [f"# Sweep: {spec.description or ', '.join(axes) or 'one cell'}", "", f"Budget: {budget}.", ""]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(group_key(r, axes), []).append(r)
    order = sorted(groups.values(), key=lambda g: g[0]["mean_final_val_bpb"])
    head = [*shown, "params", "tokens", "final val bpb", "final val loss", "best val bpb", "tokens/s", "wall s"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, g in enumerate(order):
        r = g[0]
        spread = f" ± {r['std_final_val_bpb']:.4f}" if r["std_final_val_bpb"] is not None else ""
        lspread = f" ± {r['std_final_val_loss']:.4f}" if r["std_final_val_loss"] is not None else ""
        seeds = f" ({r['seeds']} seeds)" if r["seeds"] > 1 else ""
        bpb = f"{r['mean_final_val_bpb']:.4f}{spread}{seeds}"
        cells_md = [
            *(short(r[k]) for k in shown),
            f"{r['params']:,}",
            f"{r['tokens']:,}",
            f"**{bpb}** (best)" if rank == 0 and len(order) > 1 else bpb,
            f"{r['mean_final_val_loss']:.4f}{lspread}",
            fmt(statistics.fmean(x["best_val_bpb"] for x in g)),
            fmt(statistics.fmean(x["tokens_per_sec"] or 0 for x in g), ",.0f"),
            fmt(statistics.fmean(x["wall_s"] for x in g), ".0f"),
        ]
        lines.append("| " + " | ".join(cells_md) + " |")
    lines += ["", "Every cell:", "", "| cell | final val bpb | best val bpb | final val loss | tokens/s | wall s |"]
    lines.append("|---|---|---|---|---|---|")
    for r in rows:
        lines.append(
            f"| {r['cell']} | {fmt(r['final_val_bpb'])} | {fmt(r['best_val_bpb'])} | {fmt(r['final_val_loss'])} "
            f"| {fmt(r['tokens_per_sec'], ',.0f')} | {fmt(r['wall_s'], '.0f')} |"
        )
    for name, fit in fits.items():
        lines += [
            "",
            f"Scaling fit of final val loss against {name}: {fit.describe('N' if name == 'parameters' else 'C')}",
        ]
    if plots:
        lines += ["", *(f"![{p}]({p})" for p in plots)]
    return "\n".join(lines) + "\n"


def write_reports(spec: SweepSpec, cells: list[Cell], out: Path, log) -> list[dict]:
    from .plots import plot_bars, plot_curves, plot_scaling

    rows = collect_rows(cells, out)
    write_csv(rows, out / "results.csv")
    plots = [plot_curves(cells, out), plot_bars(rows, list(cells[0].varied), out)]
    fits = plot_scaling(rows, out)
    if fits:
        plots.append("scaling.png")
        with atomic_open(out / "fit.json") as f:
            json.dump({k: v.to_dict() for k, v in fits.items()}, f, indent=2)
        for name, fit in fits.items():
            x = "N" if name == "parameters" else "C"
            log(f"scaling fit, final val loss against {name}: {fit.describe(x)}")
    with atomic_open(out / "results.md") as f:
        f.write(markdown(spec, cells, rows, fits, [p for p in plots if p]))
    return rows
