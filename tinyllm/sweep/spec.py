"""A sweep's specification: a base configuration, the axes to vary, and the per-cell budget.

A SPEC file is TOML (read with tomllib) or JSON with the same keys:

    description = "positions: learned vs sinusoidal vs rope"
    budget_tokens = 400_000        # every cell trains on this many tokens (or budget_flops = 2e12)
    evals = 8                      # evaluations per cell (sets eval_interval when not given)
    [base]                         # `tinyllm train` settings shared by every cell
    preset = "demo"
    [grid]                         # crossed: every combination of these
    pos_emb = ["learned", "sinusoidal", "rope"]
    seed = [0, 1]
    [zip]                          # zipped: varied together (equal lengths), crossed with [grid]
    d_model = [64, 96]
    n_heads = [2, 3]
    [corpora.stdlib]               # a corpus built once into OUT/corpora/stdlib.txt; data = "stdlib" names it
    glob = "{stdlib}/*.py"         # {stdlib}: this Python's standard library folder
    max_bytes = 4_000_000

On the command line `--set key=value` adds to [base] (or sets budget_tokens / budget_flops / evals),
`--grid key=v1,v2` and `--zip key=v1,v2` add axes; all repeatable, all usable without a SPEC.
"""

from __future__ import annotations

import argparse
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import TinyLLMError

TOP_KEYS = ("description", "budget_tokens", "budget_flops", "evals", "base", "grid", "zip", "corpora")
SCALAR_KEYS = ("budget_tokens", "budget_flops", "evals")
# settings a sweep decides for every cell itself
RESERVED = ("out_dir", "resume", "progress")


@dataclass
class SweepSpec:
    """What to run: base settings, axes, budget."""

    base: dict = field(default_factory=dict)
    """`tinyllm train` settings every cell shares (preset, data, batch_size, ...)."""
    grid: dict = field(default_factory=dict)
    """Crossed axes: setting -> list of values; every combination is a cell."""
    zip: dict = field(default_factory=dict)
    """Zipped axes: setting -> list of values, all of one length; value i of each goes together."""
    budget_tokens: int | None = None
    """Training tokens per cell (max_iters = budget / (batch_size x context_length x grad_accumulation_steps))."""
    budget_flops: float | None = None
    """Training FLOPs per cell (tokens = budget / TinyLLM.flops_per_token()): fair across model sizes."""
    evals: int = 10
    """Evaluations per cell, when eval_interval is not set."""
    description: str = ""
    """A line for results.md."""
    corpora: dict = field(default_factory=dict)
    """name -> {glob, max_bytes}: text corpora the sweep builds (sweep/corpora.py)."""

    def __post_init__(self):
        if self.budget_tokens is not None and self.budget_flops is not None:
            raise TinyLLMError("sweep: set budget_tokens or budget_flops, not both")
        for name in ("budget_tokens", "budget_flops"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                raise TinyLLMError(f"sweep: {name} must be a positive number, got {v!r}")
        if self.budget_tokens is not None:
            self.budget_tokens = int(self.budget_tokens)
        if not isinstance(self.evals, int) or isinstance(self.evals, bool) or self.evals <= 0:
            raise TinyLLMError(f"sweep: evals must be a positive integer, got {self.evals!r}")
        for kind in ("grid", "zip"):
            for k, values in getattr(self, kind).items():
                if not isinstance(values, list) or not values:
                    raise TinyLLMError(f"sweep: [{kind}] {k} must be a non-empty list of values, got {values!r}")
        lengths = {k: len(v) for k, v in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise TinyLLMError(
                f"sweep: [zip] axes must be of one length, got {', '.join(f'{k}: {n}' for k, n in lengths.items())}"
            )
        both = sorted(set(self.grid) & set(self.zip))
        if both:
            raise TinyLLMError(f"sweep: {', '.join(both)} is both a [grid] and a [zip] axis")

    @property
    def axes(self) -> list[str]:
        return list(self.grid) + list(self.zip)


def read_spec_file(path: str | Path) -> dict:
    """A SPEC file -> its table; TinyLLMError naming the file when it is neither TOML nor JSON."""
    p = Path(path)
    if not p.is_file():
        raise TinyLLMError(f"{p}: no such sweep spec file")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        d = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
        raise TinyLLMError(f"{p}: not a {kind} sweep spec ({str(e).splitlines()[0]})") from None
    if not isinstance(d, dict):
        raise TinyLLMError(f"{p}: a sweep spec is a table of keys, got {type(d).__name__}")
    unknown = sorted(set(d) - set(TOP_KEYS))
    if unknown:
        raise TinyLLMError(f"{p}: unknown key(s) {', '.join(unknown)}; a sweep spec has {', '.join(TOP_KEYS)}")
    for key in ("base", "grid", "zip", "corpora"):
        if not isinstance(d.get(key, {}), dict):
            raise TinyLLMError(f"{p}: [{key}] must be a table, got {d[key]!r}")
    return d


def setting_types() -> dict[str, type]:
    """Every setting a cell may have -> its scalar type (the TrainConfig / ModelConfig field's)."""
    from ..cli.flags import _scalar_type
    from ..model.config import ModelConfig
    from ..train.config import TrainConfig

    types = {"preset": str, "use_learned_pos_emb": bool}
    for cls in (TrainConfig, ModelConfig):
        types.update({k: _scalar_type(t) for k, t in typing.get_type_hints(cls).items()})
    return types


def parse_value(key: str, text: str, tp: type):
    """A command-line string -> a value of the setting's type; TinyLLMError naming the setting."""
    from ..cli.flags import str2bool

    try:
        if tp is bool:
            return str2bool(text)
        if tp is int:
            f = float(text)  # 1e6 is an int when whole
            if not f.is_integer():
                raise ValueError
            return int(f)
        return tp(text)
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        raise TinyLLMError(f"sweep: {key}={text!r} is not a valid {tp.__name__}") from None


def _split_assignment(flag: str, item: str) -> tuple[str, str]:
    key, eq, value = item.partition("=")
    if not eq or not key.strip():
        raise TinyLLMError(f"{flag} {item!r}: expected key=value")
    return key.strip(), value.strip()


def build_spec(path: str | None, sets=(), grids=(), zips=()) -> SweepSpec:
    """SPEC file (optional) + --set / --grid / --zip -> a checked SweepSpec (values typed)."""
    d = read_spec_file(path) if path else {}
    base, grid, zipped = dict(d.get("base", {})), dict(d.get("grid", {})), dict(d.get("zip", {}))
    scalars = {k: d[k] for k in SCALAR_KEYS if k in d}
    types = setting_types()
    for item in sets:
        k, v = _split_assignment("--set", item)
        if k in SCALAR_KEYS:
            scalars[k] = parse_value(k, v, float if k == "budget_flops" else int)
        else:
            base[k] = parse_value(k, v, check_setting(k, "--set", types))
    for flag, target, items in (("--grid", grid, grids), ("--zip", zipped, zips)):
        for item in items:
            k, v = _split_assignment(flag, item)
            tp = check_setting(k, flag, types)
            target[k] = [parse_value(k, x.strip(), tp) for x in v.split(",")]
    src = str(path) if path else "sweep"
    for kind, table in (("base", base), ("grid", grid), ("zip", zipped)):
        for k in table:
            check_setting(k, f"{src}: [{kind}]", types)
    return SweepSpec(
        base=base,
        grid=grid,
        zip=zipped,
        description=d.get("description", ""),
        corpora=d.get("corpora", {}),
        **scalars,
    )


def check_setting(key: str, where: str, types: dict) -> type:
    """The type of setting `key`; TinyLLMError when no cell can have it."""
    if key in RESERVED:
        raise TinyLLMError(f"{where} {key}: set by the sweep for every cell (OUT/cells/<cell>), not settable")
    if key not in types:
        raise TinyLLMError(
            f"{where} {key}: unknown axis or setting; a cell's settings are `tinyllm train`'s flags "
            f"(preset, data, pos_emb, activation, attention, d_model, n_layers, max_lr, seed, ...)"
        )
    return types[key]
