"""A sweep's cells: every combination of the axes, each an ordinary train run, planned and checked
before any of them starts.

A cell's settings are the base, then its axis values, then what the sweep fixes: max_iters from the
budget, eval_interval (budget / evals) and checkpoint_interval (= eval_interval) unless given,
out_dir OUT/cells/<name>, resume 'auto' (a rerun continues a half-finished cell from its checkpoint),
no progress bar and no sample. Every cell goes through `resolve_run`, so a value the config refuses
stops the sweep with the cell and the field named, before anything trains.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyLLMError
from .corpora import build_corpora
from .spec import SweepSpec


@dataclass
class Cell:
    """One run of the sweep."""

    index: int
    name: str
    """Its folder under OUT/cells/."""
    varied: dict
    """The axis values of this cell, in axis order."""
    settings: dict
    """Everything `resolve_run(**settings)` gets (preset included)."""
    tokens_per_step: int
    flops_per_token: float
    """TinyLLM.flops_per_token() of the cell's model (training FLOPs per token: 6N + attention)."""
    params: int
    """Parameters (the tied head counted once)."""
    non_embedding_params: int
    """Parameters without the token (and learned position) embedding: the N of the scaling fit."""

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={short(v)}" for k, v in self.varied.items()) or self.name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def short(v) -> str:
    """A value as a label shows it: a data path by its file name."""
    s = str(v)
    return Path(s).stem if ("/" in s or s.endswith(".txt")) else s


def combinations(spec: SweepSpec) -> list[dict]:
    """The axis values of every cell: the [grid] axes crossed (first axis slowest), crossed with the
    [zip] axes taken together."""
    zip_len = len(next(iter(spec.zip.values()))) if spec.zip else 1
    out = []
    for values in itertools.product(*spec.grid.values(), range(zip_len)):
        varied = dict(zip(spec.grid, values[:-1]))
        varied.update({k: v[values[-1]] for k, v in spec.zip.items()})
        out.append(varied)
    return out


def cell_name(index: int, varied: dict) -> str:
    parts = "".join(f"-{k}={short(v)}" for k, v in varied.items())
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", f"{index:03d}{parts}")[:100]


def plan_cells(spec: SweepSpec, out: Path) -> list[Cell]:
    """Every cell, checked; TinyLLMError naming the first bad cell and what is wrong with it."""
    corpora = build_corpora(spec.corpora, out) if spec.corpora else {}
    budgeted = spec.budget_tokens is not None or spec.budget_flops is not None
    if budgeted and "max_iters" in {**spec.base, **spec.grid, **spec.zip}:
        raise TinyLLMError("sweep: max_iters is set by the budget (budget_tokens / budget_flops); set one of them")
    cells, checked_data = [], set()
    for i, varied in enumerate(combinations(spec)):
        name = cell_name(i, varied)
        where = f"cell {i} ({', '.join(f'{k}={v}' for k, v in varied.items()) or 'base'})"
        settings = {**spec.base, **varied}
        if "data" in settings:
            settings["data"] = corpora.get(settings["data"], settings["data"])
            if settings["data"] not in checked_data:
                check_data(settings["data"], where)
                checked_data.add(settings["data"])
        try:
            cells.append(plan_cell(spec, i, name, varied, settings, out))
        except TinyLLMError as e:
            raise TinyLLMError(f"{where}: {e}") from None
    return cells


def plan_cell(spec: SweepSpec, i: int, name: str, varied: dict, settings: dict, out: Path) -> Cell:
    from ..train.run_config import resolve_run

    fixed = dict(out_dir=str(out / "cells" / name), resume="auto", progress=False)
    settings = {"sample_tokens": 0, **settings, **fixed}
    run = resolve_run(**settings)
    t = run.train
    tokens_per_step = t.batch_size * run.model.context_length * t.grad_accumulation_steps
    params, non_embedding, fpt = model_counts(run.model)
    if spec.budget_tokens is not None or spec.budget_flops is not None:
        tokens = spec.budget_tokens if spec.budget_tokens is not None else spec.budget_flops / fpt
        what = (
            f"budget_tokens {spec.budget_tokens:,}"
            if spec.budget_tokens is not None
            else f"budget_flops {spec.budget_flops:.3g} ({fpt:.3g} FLOPs/token) buys {int(tokens):,} tokens, which"
        )
        if tokens < tokens_per_step:
            raise TinyLLMError(
                f"{what} is less than one step ({tokens_per_step:,} tokens = batch_size {t.batch_size} x "
                f"context_length {run.model.context_length} x grad_accumulation_steps {t.grad_accumulation_steps})"
            )
        settings["max_iters"] = int(tokens // tokens_per_step)
    max_iters = settings.get("max_iters", t.max_iters)
    settings.setdefault("eval_interval", max(1, max_iters // spec.evals))
    settings.setdefault("checkpoint_interval", settings["eval_interval"])
    resolve_run(**settings)  # the final settings are what the cell runs: check them as such
    return Cell(i, name, varied, settings, tokens_per_step, fpt, params, non_embedding)


def model_counts(model_config) -> tuple[int, int, float]:
    """-> (parameters, non-embedding parameters, training FLOPs per token) of a config, from a model on
    the meta device (no memory, no init cost)."""
    import torch

    from ..model import TinyLLM

    with torch.device("meta"):
        m = TinyLLM(dataclasses.replace(model_config, attention="reference"))
    return m.num_params(), m.num_params(non_embedding=True), float(m.flops_per_token())


def check_data(data: str, where: str) -> None:
    """The data a cell trains on exists (a missing file found now, not when its turn comes)."""
    from ..data.corpus import BIBLE, text_files
    from ..data.qa import is_qa_file
    from ..data.shards import is_prepared_dir

    if data in (BIBLE, "qa") or is_qa_file(data) or is_prepared_dir(data):
        return  # resolve_run parses Q&A files; shards are checked as they load
    try:
        text_files(data)
    except TinyLLMError as e:
        raise TinyLLMError(f"{where}: data: {e}") from None
