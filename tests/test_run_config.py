"""Run configuration in one place: resolve_run gives the CLI and the Python API the same run;
presets bring their training defaults to both; Q&A files are parsed once per run; the CLI
registers every subcommand and starts without torch."""

import dataclasses
import os
import subprocess
import sys

import pytest

from tinyllm.errors import TinyLLMError
from tinyllm.train.config import TrainConfig
from tinyllm.train.presets import PRESETS
from tinyllm.train.run_config import MODEL_FIELDS, TRAIN_FIELDS, resolve_run


def cli_run(*argv):
    """The RunConfig `tinyllm train ARGV` resolves, without training."""
    from tinyllm.cli import build_parser

    args = build_parser().parse_args(["train", *argv])
    return resolve_run(
        preset=args.preset,
        use_learned_pos_emb=args.use_learned_pos_emb,
        **{k: getattr(args, k) for k in MODEL_FIELDS + TRAIN_FIELDS},
    )


def test_a_presets_training_defaults_reach_the_python_api_and_flags_override_them():
    run = resolve_run(preset="demo")
    for k, v in PRESETS["demo"].train.items():
        assert getattr(run.train, k) == v, k
    assert run.model == PRESETS["demo"].model and run.train.out_dir == os.path.join("out", "demo")
    run = resolve_run(preset="demo", max_iters=7, d_model=96)
    assert run.train.max_iters == 7 and run.train.batch_size == 16 and run.model.d_model == 96
    assert run.model_set == {"d_model"}
    assert run.train.min_lr == pytest.approx(run.train.max_lr / 10)  # derived from the preset's max_lr
    # no preset: TinyLLM's defaults, the tiny shape
    run = resolve_run()
    assert run.preset == "tiny" and run.train == TrainConfig(out_dir=os.path.join("out", "tiny"))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--preset", "demo"],
        ["--preset", "small", "--max_iters", "9", "--pos_emb", "rope", "--batch_size", "4"],
        ["--use_learned_pos_emb", "False"],
        ["--data", "qa"],
        ["--data", "qa", "--preset", "tiny", "--max_lr", "1e-3"],
    ],
)
def test_the_cli_and_the_api_resolve_the_same_run(argv):
    flags = dict(zip(argv[::2], argv[1::2]))
    kwargs = {k.lstrip("-"): v for k, v in flags.items()}
    for k in ("max_iters", "batch_size"):
        if k in kwargs:
            kwargs[k] = int(kwargs[k])
    if "max_lr" in kwargs:
        kwargs["max_lr"] = float(kwargs["max_lr"])
    if "use_learned_pos_emb" in kwargs:
        kwargs["use_learned_pos_emb"] = kwargs["use_learned_pos_emb"] == "True"
    assert cli_run(*argv) == resolve_run(**kwargs)


def test_qa_auto_settings_fill_only_what_is_left_unset():
    auto = resolve_run(data="qa")
    assert auto.preset == "demo" and auto.qa_pairs is not None and auto.train.out_dir == os.path.join("out", "qa")
    assert auto.model.context_length == 128 and auto.train.batch_size == 8 and auto.model.vocab_size == 1024
    mine = resolve_run(data="qa", batch_size=3, context_length=64)
    assert (mine.train.batch_size, mine.model.context_length) == (3, 64)
    assert mine.train.max_iters == auto.train.max_iters
    # fine-tuning: the shape comes from the checkpoint, so the auto-settings leave it alone
    tuned = resolve_run(data="qa", init_from="some.pt")
    assert "context_length" not in tuned.model_set and "vocab_size" not in tuned.model_set


def test_bad_settings_are_one_clear_error():
    with pytest.raises(TinyLLMError, match="unknown setting"):
        resolve_run(max_itres=3)
    with pytest.raises(TinyLLMError, match="unknown preset 'huge'"):
        resolve_run(preset="huge")
    with pytest.raises(TinyLLMError, match="--batch_size must be a positive integer"):
        resolve_run(batch_size=0)


def test_presets_are_typed_and_checked():
    from tinyllm.train.presets import Preset

    for p in PRESETS.values():
        assert set(p.train) <= {f.name for f in dataclasses.fields(TrainConfig)}
    with pytest.raises(TypeError, match="max_itres"):
        Preset("x", PRESETS["demo"].model, {"max_itres": 3})
    with pytest.raises(TypeError):
        PRESETS["demo"].train["max_iters"] = 1  # read-only


def test_a_qa_file_is_parsed_once_per_run(tmp_path, monkeypatch):
    import tinyllm.data.qa as qa
    from tinyllm.train import Trainer

    calls = []
    real = qa.load_qa
    monkeypatch.setattr(qa, "load_qa", lambda path: calls.append(path) or real(path))
    run = resolve_run(
        data="qa",
        max_iters=2,
        eval_interval=2,
        eval_iters=1,
        d_model=32,
        n_layers=1,
        n_heads=2,
        d_ff=64,
        out_dir=str(tmp_path / "o"),
        progress=False,
        device="cpu",
    )
    Trainer(run).run()
    assert len(calls) == 1, calls


def test_every_subcommand_is_registered_and_help_imports_no_torch():
    from pathlib import Path

    import tinyllm.cli

    code = (
        "import sys; from tinyllm.cli import build_parser; p = build_parser(); "
        "names = sorted(p._subparsers._group_actions[0].choices); "
        "p.parse_args(['tokenizer', 'view', '--tokenizer', 'x']); "
        "print(' '.join(names), 'torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    *names, torch_imported = r.stdout.split()
    assert torch_imported == "False"
    assert {"train", "generate", "chat", "tokenizer", "prepare", "bench"} <= set(names)
    # every subcommand module in tinyllm/cli/ is registered (none silently left out)
    modules = {p.stem for p in Path(tinyllm.cli.__file__).parent.glob("*.py")} - {"__init__", "flags"}
    assert modules == {m.__name__.rsplit(".", 1)[1] for m in tinyllm.cli.SUBCOMMANDS}


def test_a_broken_subcommand_module_is_an_error_not_a_missing_command(tmp_path):
    """A subcommand module that fails to import must fail loudly (it used to vanish silently)."""
    code = (
        "import sys; sys.modules['tinyllm.cli.prepare'] = None; "  # makes importing it an ImportError
        "from tinyllm.cli import main; main(['--help'])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "import of tinyllm.cli.prepare halted" in r.stderr, r.stderr[-500:]
