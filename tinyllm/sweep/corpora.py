"""Corpora a sweep builds for itself: files matched by a glob, joined into OUT/corpora/NAME.txt.

`tinyllm train --data` reads .txt files; another corpus on the machine, such as Python's own
standard library (.py files), becomes one text file here, whole files in sorted order up to
max_bytes, each followed by a blank line (a document break). The file is written once, atomically,
and reused while it exists, so a rerun's cells see the same text.
"""

from __future__ import annotations

import glob
import sysconfig
from pathlib import Path

from ..errors import TinyLLMError
from ..io import atomic_open


def build_corpora(corpora: dict, out: Path) -> dict[str, str]:
    """{name: {glob, max_bytes}} -> {name: path of the built text file}."""
    built = {}
    for name, table in corpora.items():
        if not isinstance(table, dict) or "glob" not in table:
            raise TinyLLMError(f'sweep: [corpora.{name}] needs glob = "..." (and optionally max_bytes)')
        pattern = str(table["glob"]).replace("{stdlib}", sysconfig.get_paths()["stdlib"])
        max_bytes = int(table.get("max_bytes", 1 << 62))
        path = out / "corpora" / f"{name}.txt"
        if not path.exists():
            files = sorted(f for f in glob.glob(pattern, recursive=True) if Path(f).is_file())
            if not files:
                raise TinyLLMError(f"sweep: [corpora.{name}] glob {pattern!r} matches no files")
            size = 0
            with atomic_open(path, "w") as f:
                for name_ in files:
                    text = Path(name_).read_text(encoding="utf-8", errors="replace").strip("\n")
                    n = len(text.encode("utf-8")) + 2
                    if size and size + n > max_bytes:
                        break
                    f.write(text + "\n\n")
                    size += n
        built[name] = str(path)
    return built
