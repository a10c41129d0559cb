"""Reading a task's recipe section, whatever object carries it."""
from __future__ import annotations

from typing import Any, Mapping

from mmadapt.api import MmadaptError


def option(options: Any, key: str) -> Any:
    """`options.key` for the recipe's task section (an OmegaConf node, a dataclass or a dict).

    The recipe is validated against the task's `Options`, so a missing key means the caller
    passed something else: an error naming the key.
    """
    if isinstance(options, Mapping):
        if key in options:
            return options[key]
    elif hasattr(options, key):
        return getattr(options, key)
    raise MmadaptError(f"task option {key!r} is missing from the task section passed to the task")
