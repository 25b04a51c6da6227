"""Training: run configuration, the loop and its parts, checkpoints, torchrun.
Names load lazily (tinyllm.lazy_exports): the configs alone do not import torch."""

from .. import lazy_exports

__all__ = [
    "TrainConfig",
    "RunConfig",
    "resolve_run",
    "Trainer",
    "TrainResult",
    "TrainState",
    "load_checkpoint",
    "lr_at",
    "PRESETS",
    "preset",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TrainConfig": ".config",
        "RunConfig": ".run_config",
        "resolve_run": ".run_config",
        "Trainer": ".trainer",
        "TrainResult": ".trainer",
        "TrainState": ".checkpoint",
        "load_checkpoint": ".checkpoint",
        "lr_at": ".schedule",
        "PRESETS": ".presets",
        "preset": ".presets",
    },
)
