"""The old import path of the experiment trackers, which moved to :mod:`kdzoo.loggers` (the bottom floor:
the built-in plugin registers them and the run driver opens them, both importing downwards)."""

from __future__ import annotations

from ..loggers import (BUILTIN_LOGGERS, LoggerContext, MLflowLogger, RunLogger,  # noqa: F401 - re-exported
                       TensorBoardLogger, check_logger_names, flat_params, open_loggers)
from ..loggers import __all__  # noqa: F401
