import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seeds; tests that want fresh randomness draw their own."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m tinyllm ...` in a subprocess: -> CompletedProcess (text)."""
    import subprocess

    def run(*args, input=None, timeout=600, env=None, cwd=None):
        e = dict(os.environ)
        e.setdefault("PYTHONUNBUFFERED", "1")
        if env:
            e.update(env)
        return subprocess.run(
            [sys.executable, "-m", "tinyllm", *map(str, args)],
            input=input,
            text=True,
            capture_output=True,
            timeout=timeout,
            env=e,
            cwd=cwd or tmp_path,
        )

    return run


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """600 KJV verses as a text file, one paragraph (document) each: the small corpus of the trainer tests."""
    from tinyllm.data.corpus import bible_verses

    path = tmp_path_factory.mktemp("corpus") / "kjv.txt"
    path.write_text("\n\n".join(bible_verses()[:600]) + "\n", encoding="utf-8")
    return path
