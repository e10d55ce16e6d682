"""CIFAR-10: where its batch files are (`files`: found, or downloaded into the cache) and how they
become normalised splits (`cifar10`). X is d x n, Y one-hot K x n, y the n labels."""
from .cifar10 import (
           CIFAR10,
           LABEL_NAMES,
           D,
           K,
           Source,
           Split,
           load_batch,
           load_cifar10,
           one_hot,
           zca_whiten,
)
from .files import DataError, default_cache_dir, download_cifar10, find_data_dir

__all__ = ["CIFAR10", "D", "K", "LABEL_NAMES", "DataError", "Source", "Split",
           "default_cache_dir", "download_cifar10", "find_data_dir", "load_batch", "load_cifar10",
           "one_hot", "zca_whiten"]
