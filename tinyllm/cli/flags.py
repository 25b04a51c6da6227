"""Map config dataclasses to argparse flags: one flag per field, help from the field's docstring."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing


def field_docs(cls) -> dict[str, str]:
    """The string literal under each annotated field of a dataclass (its docstring)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = nxt.value.value
    return docs


def str2bool(v: str) -> bool:
    if isinstance(v, bool):
        return v
    if v.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if v.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {v!r}")


def _scalar_type(tp):
    """float | None -> float; int -> int; ..."""
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if args else str
    return tp


def add_dataclass_flags(
    parser: argparse.ArgumentParser, cls, skip: tuple = (), defaults_none: bool = False, group_title: str | None = None
) -> None:
    """Add --<field> for every field of `cls`. With defaults_none the flag's default is None
    (so the caller can tell 'not given' from a value and apply presets)."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    target = parser.add_argument_group(group_title) if group_title else parser
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = _scalar_type(hints[f.name])
        default = None if defaults_none else f.default
        help_text = docs.get(f.name, "")
        if not defaults_none:
            help_text += f" (default: {f.default})"
        if tp is bool:
            target.add_argument(
                f"--{f.name}", type=str2bool, nargs="?", const=True, default=default, metavar="BOOL", help=help_text
            )
        else:
            target.add_argument(f"--{f.name}", type=tp, default=default, help=help_text)


def add_progress_flag(parser, default: bool | None, help: str) -> None:
    """--progress [BOOL] (bare: true); default None lets the command decide (e.g. only on a terminal)."""
    parser.add_argument("--progress", type=str2bool, nargs="?", const=True, default=default, metavar="BOOL", help=help)
