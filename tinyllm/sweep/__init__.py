"""Sweeps: a grid of short trainings under one fixed budget, compared in bits per byte (`tinyllm sweep`).

spec.py (the SPEC file and --set/--grid/--zip), cells.py (the cells, planned and checked), corpora.py
(corpora a sweep builds), runner.py (running them, resumable, N at a time), worker.py (one cell),
report.py (results.csv, results.md), plots.py, fit.py (L = E + A / N^alpha). Names load lazily."""

from .. import lazy_exports

__all__ = ["SweepSpec", "build_spec", "run_sweep", "fit_power_law", "PowerLawFit"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SweepSpec": ".spec",
        "build_spec": ".spec",
        "run_sweep": ".runner",
        "fit_power_law": ".fit",
        "PowerLawFit": ".fit",
    },
)
