# PYTHON_ARGCOMPLETE_OK
"""The ``kdzoo`` command line: a thin layer over the Python API.

Every error a user can cause prints one line (``kdzoo: error: ...``) and exits with code 2,
before anything is written. ``--help``, ``--version``, the listings and shell completion import no
torch: they read the listing cache (:mod:`kdzoo.zoo.listing`); machine output (``--json``, ``kdzoo
teacher``) is alone on stdout, logs go to stderr.

The package's rooms: :mod:`~kdzoo.cli.entry` (``main``: dispatch and error lines),
:mod:`~kdzoo.cli.parser` (the flags, help and completion), :mod:`~kdzoo.cli.flags` (run flags to config
data), :mod:`~kdzoo.cli.run_commands` (distill, teacher, eval, bench, tune),
:mod:`~kdzoo.cli.result_commands` (compare, runs, report) and :mod:`~kdzoo.cli.listing_commands`
(strategies, plugins, models, datasets, cache, completion). The console script runs
``kdzoo.cli:main``; argcomplete looks for the marker above in this file.
"""

from .entry import COMMANDS, ERROR_LINE_LIMIT, main, readable, run_plugin_command  # noqa: F401
# the names kdzoo.cli held as one module, for tests and scripts that import them from here
from .flags import WEIGHT_SUFFIXES, _config_data, _name_from_file, _weights_path  # noqa: F401
from .parser import HELP_EPILOG, _parser  # noqa: F401

__all__ = ["main"]
