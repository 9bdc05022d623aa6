"""Model zoo (pretrained MiniLM + small LoRA artifacts) and the fine-tuning that makes it."""

from .zoo import RECIPES, ZOO, base_model_dir, evaluate, load_zoo_model, train_recipe

__all__ = ["RECIPES", "ZOO", "base_model_dir", "evaluate", "load_zoo_model", "train_recipe"]
