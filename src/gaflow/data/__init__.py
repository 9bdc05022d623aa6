"""Datasets for training and evaluation: local files first, the HF hub when online."""

from .loaders import DATASETS, TextDataset, data_root, default_split, load_dataset

__all__ = ["DATASETS", "TextDataset", "data_root", "default_split", "load_dataset"]
