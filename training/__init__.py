"""The training pipeline ML engineers run: data -> validate -> fit -> tune -> evaluate -> model folder."""

from .pipeline import TrainConfig, load_config, train_model, validate_data

__all__ = ["TrainConfig", "load_config", "train_model", "validate_data"]
