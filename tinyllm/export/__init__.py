"""Models and tokenizers out of tinyllm, and transformers models in.

    export_checkpoint("out/demo/best.pt", "hf", "demo-hf/")     # transformers directory (hf.py)
    export_checkpoint("out/demo/best.pt", "gguf", "demo.gguf")  # llama.cpp, gpt2 architecture (gguf.py)
    export_checkpoint("out/demo/best.pt", "tiktoken", "demo.tiktoken")  # its tokenizer (tiktoken.py)
    export_tokenizer(tok, "hf", "tok-hf/")                      # tokenizer.json & co (tokenizer_json.py)
    import_hf("demo-hf/", "imported.pt")                        # and back (hf_import.py)

Each writes its output whole or not at all (outputs.py). Importing this package imports no torch:
`tinyllm tokenizer export` stays light.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TinyLLMError

CHECKPOINT_FORMATS = ("hf", "gguf", "tiktoken")
TOKENIZER_FORMATS = ("hf", "tiktoken")


def export_tokenizer(tok, fmt: str, out: str | Path) -> list[Path]:
    """Write `tok` as a Hugging Face tokenizer directory or tiktoken files; -> what was written."""
    if fmt == "hf":
        from .outputs import atomic_dir
        from .tokenizer_json import write_hf_tokenizer

        with atomic_dir(out) as tmp:
            write_hf_tokenizer(tok, tmp)
        return [Path(out)]
    if fmt == "tiktoken":
        from .tiktoken import write_tiktoken

        if Path(out).is_dir():
            raise TinyLLMError(
                f"--out {out}: is a directory; --format tiktoken writes a file (e.g. {Path(out) / 'tok.tiktoken'})"
            )
        return write_tiktoken(tok, out)
    raise TinyLLMError(f"--format must be one of {', '.join(TOKENIZER_FORMATS)}, got {fmt!r}")


def export_checkpoint(checkpoint: str | Path, fmt: str, out: str | Path) -> str:
    """Write a checkpoint in `fmt`; -> a one-line description of what was written."""
    if fmt not in CHECKPOINT_FORMATS:
        raise TinyLLMError(f"--format must be one of {', '.join(CHECKPOINT_FORMATS)}, got {fmt!r}")
    from ..train.checkpoint import TrainState

    state = TrainState.load(checkpoint)
    if fmt == "hf":
        from .hf import CLASSES, export_hf

        arch = export_hf(state, out)
        return f"wrote a transformers {CLASSES[arch]} directory to {out}"
    if fmt == "gguf":
        from .gguf import export_gguf

        export_gguf(state, out, name=Path(checkpoint).stem)
        return f"wrote a llama.cpp gpt2 GGUF file to {out}"
    from ..tokenizer import Tokenizer

    written = export_tokenizer(Tokenizer.from_str(state.tokenizer), "tiktoken", out)
    return "wrote the checkpoint's tokenizer to " + " and ".join(map(str, written))


def import_hf(directory: str | Path, out: str | Path):
    """A local transformers directory -> a tinyllm checkpoint; -> its ModelConfig (hf_import.py)."""
    from .hf_import import import_hf as run

    return run(directory, out)
