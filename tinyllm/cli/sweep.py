"""`tinyllm sweep [SPEC] --out DIR`: a grid of short trainings under one budget, compared in bits per byte.

Progress goes to stderr; the reports to DIR (results.csv, results.md, plots)."""

from __future__ import annotations


def add_parser(sub) -> None:
    s = sub.add_parser(
        "sweep",
        help="run a grid of short trainings under one budget; results.csv, results.md, plots",
        description=(
            "Run every cell of a sweep (an ordinary `tinyllm train` run each, in DIR/cells/<cell>), then write "
            "results.csv, results.md, curves.png, bars.png and, for size sweeps, scaling.png with a fitted "
            "L = E + A / N^alpha. Rerun the same command to continue a killed sweep. Example: "
            "tinyllm sweep --out sweeps/pos --set preset=demo --set max_iters=30 --grid pos_emb=learned,rope"
        ),
    )
    s.add_argument("spec", nargs="?", default=None, metavar="SPEC", help="a TOML or JSON sweep spec (optional)")
    s.add_argument("--out", required=True, metavar="DIR", help="where the cells and the reports go")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a base setting (a `tinyllm train` flag name), or budget_tokens / budget_flops / evals; repeatable",
    )
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="a crossed axis; repeatable")
    s.add_argument(
        "--zip",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a zipped axis (all --zip axes vary together, crossed with the --grid axes); repeatable",
    )
    s.add_argument("--jobs", type=int, default=1, help="cells at once, threads split so jobs x threads <= cores")
    s.add_argument("--dry_run", action="store_true", help="plan and check every cell, print them, run nothing")
    s.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    import sys
    from pathlib import Path

    from ..sweep.spec import build_spec

    spec = build_spec(args.spec, args.set, args.grid, args.zip)
    if args.dry_run:
        from ..sweep.cells import plan_cells

        for c in plan_cells(spec, Path(args.out)):
            print(f"{c.name}: max_iters {c.settings.get('max_iters')}, {c.params:,} parameters")
        return 0
    import contextlib
    import os

    from ..io import OutputLock, check_output_dir
    from ..sweep.runner import run_sweep

    check_output_dir(args.out, "--out")  # before any cell runs
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1  # under torchrun every rank writes its own cells
    with (
        OutputLock(args.out, f"--out {args.out}", lambda m: print(m, file=sys.stderr))
        if single
        else contextlib.nullcontext()
    ):
        run_sweep(spec, args.out, args.jobs)
    print(Path(args.out) / "results.md", file=sys.stdout)
    return 0
