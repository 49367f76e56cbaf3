"""Labelled data: text tables, image folders, built-in sets, splits and batching."""

from .builtin import BUILTINS, fetch_vader, load_builtin
from .examples import RawData, Split, TaskData
from .prepare import encode_eval_data, load_source, prepare_task_data

__all__ = [
    "BUILTINS", "RawData", "Split", "TaskData", "encode_eval_data", "fetch_vader", "load_builtin",
    "load_source", "prepare_task_data",
]
