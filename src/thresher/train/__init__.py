"""Training: recipes, the fast single-model trainer, many models at once, checkpoints."""

from thresher.train.checkpoint import checkpoint_info, load_checkpoint, save_checkpoint
from thresher.train.ensemble import UnstackableError, train_many
from thresher.train.recipes import RECIPES, Recipe, get_recipe, register_recipe
from thresher.train.stacking import StackedModels, check_stacked, stack_models, unstack
from thresher.train.trainer import EpochStats, TrainingObserver, TrainResult, fit, predict

__all__ = [
    "RECIPES",
    "EpochStats",
    "Recipe",
    "StackedModels",
    "TrainResult",
    "TrainingObserver",
    "UnstackableError",
    "check_stacked",
    "checkpoint_info",
    "fit",
    "get_recipe",
    "load_checkpoint",
    "predict",
    "register_recipe",
    "save_checkpoint",
    "stack_models",
    "train_many",
    "unstack",
]
