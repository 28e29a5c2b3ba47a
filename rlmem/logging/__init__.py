"""Loggers for training runs: CSV, TensorBoard and Weights & Biases behind one interface."""

from .base import Logger, MultiLogger, SafeLogger
from .csv_logger import CSVLogger

__all__ = ["CSVLogger", "Logger", "MultiLogger", "SafeLogger"]
