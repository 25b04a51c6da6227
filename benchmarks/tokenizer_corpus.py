"""Build the tokenizer benchmark corpus from text already on this machine (no download).

    python benchmarks/tokenizer_corpus.py --out /tmp/tinyllm_bench/corpus.txt --mb 110

The corpus mixes English prose, other languages and code, roughly:
  * man pages in every installed language (troff source, gunzipped)     ~30%
  * /usr/share/doc and /usr/share/info (READMEs, changelogs, manuals)    ~20%
  * Python source: the standard library, then site-packages             ~50%
Files are taken in sorted path order, so the same machine builds the same corpus.
Each file is one document; documents are joined by a blank line and their byte
offsets written to <out>.docs.json (the batch-encoding benchmark uses them).
Invalid UTF-8 is replaced (U+FFFD) so every tool reads the same valid text.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import sysconfig
from pathlib import Path

DEFAULT_OUT = Path(os.environ.get("TINYLLM_BENCH_CORPUS", "/tmp/tinyllm_bench/corpus.txt"))
MAX_DOC = 2 << 20  # skip single files over 2 MB (generated tables, not text)


def _read(path: Path) -> str | None:
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError):
        return None
    if not raw or len(raw) > MAX_DOC or b"\x00" in raw[:4096]:  # binary
        return None
    return raw.decode("utf-8", "replace")


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.name.endswith(suffixes))


def sources() -> list[tuple[str, list[Path], float]]:
    """(name, files, share of the corpus) in the order they are taken."""
    man = Path("/usr/share/man")
    other_langs = (
        sorted(d for d in man.iterdir() if d.is_dir() and not d.name.startswith("man")) if man.is_dir() else []
    )
    man_files = [f for d in other_langs for f in _files(d, (".gz",))] + _files(man, (".gz",))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    site = Path(sysconfig.get_paths()["purelib"])
    py_std = [p for p in _files(stdlib, (".py",)) if "site-packages" not in p.parts]
    return [
        ("man pages", list(dict.fromkeys(man_files)), 0.30),
        (
            "docs",
            _files(Path("/usr/share/doc"), (".gz", ".txt", "README", "NEWS", ".md", ".rst"))
            + _files(Path("/usr/share/info"), (".gz",)),
            0.20,
        ),
        ("python source", py_std + _files(site, (".py",)), 0.50),
    ]


def build(out: Path, megabytes: int) -> None:
    target = megabytes << 20
    out.parent.mkdir(parents=True, exist_ok=True)
    offsets, written = [], 0
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for name, files, share in sources():
            budget, used, n = int(target * share), 0, 0
            for path in files:
                if used >= budget:
                    break
                text = _read(path)
                if not text:
                    continue
                doc = text.rstrip("\n") + "\n\n"
                size = len(doc.encode("utf-8"))
                offsets.append(written)
                f.write(doc)
                written += size
                used += size
                n += 1
            print(f"  {name:14s} {used / 1e6:7.1f} MB from {n} files", file=sys.stderr)
    tmp.replace(out)
    offsets.append(written)
    out.with_name(out.name + ".docs.json").write_text(json.dumps(offsets))
    print(f"wrote {out} ({written / 1e6:.1f} MB, {len(offsets) - 1} documents)", file=sys.stderr)


def ensure_corpus(out: Path = DEFAULT_OUT, megabytes: int = 110) -> Path:
    """Build the corpus unless a large enough one is already there."""
    docs = out.with_name(out.name + ".docs.json")
    if not (out.exists() and docs.exists() and out.stat().st_size >= int(megabytes * 0.95) << 20):
        build(out, megabytes)
    return out


def load_documents(corpus: Path) -> list[str]:
    """The corpus as its documents (str), using the offsets file."""
    data = corpus.read_bytes()
    offsets = json.loads(corpus.with_name(corpus.name + ".docs.json").read_text())
    return [data[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus file to write")
    ap.add_argument("--mb", type=int, default=110, help="corpus size in MiB (at least 100 for the issue's benchmark)")
    args = ap.parse_args()
    build(args.out, args.mb)


if __name__ == "__main__":
    main()
