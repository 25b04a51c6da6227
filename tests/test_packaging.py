"""Installed layout: `tinyllm.kernels` exists, a top-level `kernels` package does not."""

import subprocess
import sys


def test_kernels_install_under_tinyllm_only(tmp_path):
    code = "import importlib.util, tinyllm.kernels as k; print(k.__name__, importlib.util.find_spec('kernels') is None)"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["tinyllm.kernels", "True"]


def test_tokenizer_import_does_not_pull_in_torch(tmp_path):
    code = "import sys, tinyllm.tokenizer; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_console_script_is_declared():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert eps.get("tinyllm") == "tinyllm.cli:main"
