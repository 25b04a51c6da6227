"""One run's configuration, resolved in one place for the CLI and the Python API alike.

    run = resolve_run(preset="demo", max_iters=30)          # what `tinyllm train --preset demo --max_iters 30` does
    Trainer(run).run()

Precedence, lowest first: TrainConfig / ModelConfig defaults < the preset (its model shape and
training defaults) < the Q&A auto-settings (train/qa_defaults.py: a size and schedule picked from
the number of pairs, only for what the user left unset) < what the caller set. A setting left
at None counts as not set.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..errors import TinyLLMError
from ..model.config import SHAPE_FIELDS, ModelConfig
from .config import TrainConfig
from .presets import DEFAULT_PRESET, get_preset
from .qa_defaults import qa_preset_name, qa_train_defaults

MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


@dataclass(frozen=True)
class RunConfig:
    """A resolved run: the model asked for, how to train it, and what the user chose."""

    model: ModelConfig
    """The model asked for (resuming or fine-tuning takes the shape from the checkpoint instead)."""
    train: TrainConfig
    """How to train."""
    preset: str
    """The preset the model shape and training defaults came from."""
    model_set: frozenset[str]
    """Model fields set by the caller (or by the Q&A auto-settings): a checkpoint must agree on these."""
    preset_explicit: bool = False
    """The caller named the preset: then every preset field but vocab_size counts as asked for when
    a resumed checkpoint is compared with this run (the corpus may lower vocab_size)."""
    qa_pairs: tuple | None = None
    """The parsed pairs when train.data is a Q&A file (parsed here, once per run), else None."""

    @property
    def model_asked(self) -> frozenset[str]:
        """The model fields a resumed checkpoint must match."""
        if not self.preset_explicit:
            return self.model_set
        return self.model_set | (set(MODEL_FIELDS) - {"vocab_size"})


def resolve_run(preset: str | None = None, use_learned_pos_emb: bool | None = None, **settings) -> RunConfig:
    """Preset + Q&A auto-settings + settings -> RunConfig. `settings` are TrainConfig and ModelConfig
    field names (None = not set); use_learned_pos_emb is TinyLLM's switch for pos_emb
    (True = learned, False = sinusoidal)."""
    from ..data.qa import is_qa_file, load_qa, resolve_qa_source

    unknown = sorted(set(settings) - set(MODEL_FIELDS) - set(TRAIN_FIELDS))
    if unknown:
        raise TinyLLMError(
            f"unknown setting(s) {', '.join(unknown)}; settings are the fields of TrainConfig and "
            f"ModelConfig (`tinyllm train --help` lists them)"
        )
    given = {k: v for k, v in settings.items() if v is not None}
    if use_learned_pos_emb is not None and "pos_emb" not in given:
        given["pos_emb"] = "learned" if use_learned_pos_emb else "sinusoidal"
    if "data" in given:
        given["data"] = resolve_qa_source(given["data"])  # 'qa': the demo set shipped in the package
    data = given.get("data")
    pairs = tuple(load_qa(data)) if data and is_qa_file(data) and os.path.isfile(data) else None
    if pairs is not None:
        given = {**qa_settings(pairs, preset, fine_tuning=bool(given.get("init_from"))), **given}
    name = preset or (qa_preset_name(len(pairs)) if pairs is not None else DEFAULT_PRESET)
    chosen = get_preset(name)
    model_given = {k: v for k, v in given.items() if k in MODEL_FIELDS}
    model = ModelConfig(**{**chosen.model.to_dict(), **model_given})
    train_given = {k: v for k, v in given.items() if k in TRAIN_FIELDS}
    train_given.setdefault("out_dir", os.path.join("out", "qa" if pairs is not None else name))
    train = TrainConfig(**{**chosen.train, **train_given})
    return RunConfig(model, train, name, frozenset(model_given), preset is not None, pairs)


def qa_settings(pairs, preset: str | None, fine_tuning: bool) -> dict:
    """The Q&A auto-settings; when fine-tuning, without shape fields (the checkpoint has the shape)."""
    auto = qa_train_defaults(pairs, preset)
    return {k: v for k, v in auto.items() if not (fine_tuning and k in SHAPE_FIELDS)}
