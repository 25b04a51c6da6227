from .checkpoint import load_checkpoint
from .config import TrainConfig
from .schedule import lr_at
from .trainer import Trainer, TrainResult

__all__ = ["TrainConfig", "Trainer", "TrainResult", "load_checkpoint", "lr_at"]
