"""Build script for tinyllm.

The C++ BPE core (`tinyllm._bpe`, from csrc/) is optional: if it fails to build,
tinyllm falls back to the pure-Python tokenizer with a warning at install time.
Set TINYLLM_REQUIRE_NATIVE=1 (CI does) to turn a failed build into an error.
Set TINYLLM_SANITIZE=1 to build it with AddressSanitizer + UBSan (see Makefile).

`kernels/` (Triton kernels) installs as `tinyllm.kernels`, never as a top-level
`kernels` package (that name belongs to another PyPI project).
"""

import os
import sys
import tempfile
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent
REQUIRE_NATIVE = os.environ.get("TINYLLM_REQUIRE_NATIVE", "") == "1"
SANITIZE = os.environ.get("TINYLLM_SANITIZE", "") == "1"


def _compiler_accepts(compiler, flag: str) -> bool:
    """Probe a flag by compiling an empty file (flags are probed, not assumed)."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "probe.cpp"
        src.write_text("int main() { return 0; }\n")
        try:
            compiler.compile([str(src)], output_dir=d, extra_postargs=[flag])
        except Exception:
            return False
    return True


class OptionalBuildExt(build_ext):
    """Build the native core with probed flags; fall back unless it is required."""

    def build_extensions(self):
        ct = self.compiler.compiler_type
        for ext in self.extensions:
            if ct == "msvc":
                ext.extra_compile_args += ["/O2", "/std:c++17", "/EHsc"]
                continue
            wanted = ["-std=c++17", "-fvisibility=hidden", "-pthread"]
            wanted += ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"] if SANITIZE else ["-O3"]
            flags = [f for f in wanted if _compiler_accepts(self.compiler, f)]
            ext.extra_compile_args += flags
            ext.extra_link_args += ["-pthread"] + (["-fsanitize=address,undefined"] if SANITIZE else [])
        super().build_extensions()

    def run(self):
        try:
            super().run()
        except Exception as e:  # compiler missing, pybind11 missing, compile error
            self._fallback(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._fallback(e)

    def _fallback(self, e: Exception):
        if REQUIRE_NATIVE:
            raise
        print(
            f"WARNING: building the C++ BPE core failed ({e}); tinyllm will use the pure-Python tokenizer.",
            file=sys.stderr,
        )


def _extensions():
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.cpp"))
    if not sources:
        return []
    try:
        from pybind11.setup_helpers import Pybind11Extension
    except ImportError:
        if REQUIRE_NATIVE:
            raise
        print("WARNING: pybind11 not found; skipping the C++ BPE core.", file=sys.stderr)
        return []
    # depends: a change to a csrc/*.h header (e.g. the generated Unicode table) rebuilds too
    headers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.h"))
    ops = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc" / "ops").glob("*.cpp"))
    ops_headers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc" / "ops").glob("*.[hi]*"))  # .h, .inc
    return [
        Pybind11Extension("tinyllm._bpe", sources, include_dirs=["csrc"], depends=headers, cxx_std=17),
        # CPU ops of the model (csrc/ops/): optional like the tokenizer core; their references run without them
        Pybind11Extension("tinyllm._ops", ops, include_dirs=["csrc/ops"], depends=ops_headers, cxx_std=17),
    ]


setup(
    name="tinyllm",
    version="0.1.0",
    description="A from-scratch GPT toolkit: C++ BPE, Triton kernels, torchrun trainer",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["tinyllm", "tinyllm.*"]) + ["tinyllm.kernels"],
    package_dir={"tinyllm.kernels": "kernels"},
    package_data={"tinyllm": ["assets/*", "serve/static/*"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    install_requires=[
        "torch>=2.3",
        "numpy>=1.24",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "pybible>=0.0.2",
        # exact: csrc/unicode_tables.h is generated from this regex (its Unicode version); the C++ splitter
        # and the Python reference agree only on the same one. Bump both together (csrc/gen_unicode_tables.py).
        "regex==2026.11.19",
        "safetensors>=0.4",
        "triton>=3.0; platform_system == 'Linux'",
    ],
    extras_require={
        # Hugging Face / GGUF / tiktoken export and import (tinyllm export, tinyllm import)
        "export": ["transformers>=4.40", "tokenizers>=0.15", "tiktoken>=0.7", "gguf>=0.10"],
        # JSON Lines / Parquet / compressed corpora in (orjson: JSON Lines parsed 2.7x faster than json)
        "data": ["pyarrow>=14", "zstandard>=0.22", "orjson>=3.9"],
        # tinyllm serve: the OpenAI-compatible server
        # (uvloop and httptools: uvicorn's C event loop and HTTP parser, which it picks when installed;
        # with its pure-Python h11 and asyncio's loop, 16 streams got 0.75x the tokens/s on 2 cores)
        "serve": ["fastapi>=0.110", "uvicorn>=0.29", "uvloop>=0.19; sys_platform != 'win32'", "httptools>=0.6"],
        # tinyllm sweep: the power-law fit
        "sweep": ["scipy>=1.11"],
        # the test suite: every extra, plus the real clients the tests drive (openai, selenium)
        "dev": [
            "pytest>=7",
            "pytest-benchmark>=4",
            "hypothesis>=6",
            "pybind11>=2.12",
            "ruff==0.17.6",
            "transformers>=4.40",
            "tokenizers>=0.15",
            "tiktoken>=0.7",
            "gguf>=0.10",
            "pyarrow>=14",
            "zstandard>=0.22",
            "orjson>=3.9",
            "fastapi>=0.110",
            "uvicorn>=0.29",
            "uvloop>=0.19; sys_platform != 'win32'",
            "httptools>=0.6",
            "httpx>=0.27",
            "openai>=1.30",
            "selenium>=4.20",
            "scipy>=1.11",
        ],
        "bench": ["tiktoken>=0.7", "tokenizers>=0.15", "sentencepiece>=0.2", "rustbpe>=0.1", "transformers>=4.40"],
    },
    entry_points={"console_scripts": ["tinyllm=tinyllm.cli:main"]},
)
