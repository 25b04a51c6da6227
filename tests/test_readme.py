"""README's Quick start is what CI runs, its command lines parse, and its Python snippets run as written."""

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


def python_snippets() -> list[str]:
    return re.findall(r"```python\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)


def test_readme_python_snippets_run_as_written(tmp_path):
    """Each ```python block of README.md, run verbatim in a fresh interpreter, in an empty folder
    given what the snippets name and do not make themselves: data/my_dataset.json."""
    import json
    import os
    import subprocess
    import sys

    from tinyllm.data.qa import demo_qa_path

    snippets = python_snippets()
    assert len(snippets) >= 2, "README lost its Python examples"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "my_dataset.json").write_text(json.dumps(json.loads(demo_qa_path().read_text())[:30]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for i, code in enumerate(snippets):
        r = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
        )
        assert r.returncode == 0, f"README python snippet {i + 1} failed:\n{code}\n{r.stderr[-3000:]}"
