"""README's Quick start is what CI runs, and its Python snippets name real APIs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick, re.S)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    cmds = quick_start_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds), cmds
    assert "tinyllm train --preset demo" in cmds[0]
    assert "pytest" in cmds[1]
    assert cmds[1] in (ROOT / ".ci" / "run").read_text()


def test_cli_commands_in_readme_parse():
    """Every `tinyllm ...` line in README's CLI tour is accepted by the parser."""
    import shlex

    from tinyllm.cli import build_parser

    text = (ROOT / "README.md").read_text()
    lines = [ln.split("#")[0].split("|")[0].strip() for ln in text.splitlines() if ln.startswith("tinyllm ")]
    assert len(lines) >= 8
    parser = build_parser()
    for ln in lines:
        parser.parse_args(shlex.split(ln)[1:])
