"""The ``kdzoo`` entry point: parse, dispatch to a command, and turn every error into one line and an exit code.

It owns :func:`main` (what the console script and ``python -m kdzoo`` run), the table of built-in
commands, plugin commands (parsed with their own arguments), the listing snapshot a command needs,
and how an error reads (``kdzoo: error: ...``, exit 2; an internal error, exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from ..contract.errors import Interrupted, KdzooError, error_line
from .listing_commands import cmd_cache, cmd_completion, cmd_list
from .parser import _names, _Parser, _parser
from .result_commands import cmd_compare, cmd_report, cmd_runs
from .run_commands import cmd_bench, cmd_distill, cmd_eval, cmd_teacher, cmd_tune
from ..zoo.listing import listing
from ..zoo.plugins import BUILTIN_COMMANDS, load_zoo


def run_plugin_command(name: str, argv: list[str]) -> int:
    """Load the plugins, then parse ``argv`` with the command's own arguments and run it."""
    entry = load_zoo().collect().commands.get(name)
    if entry is None:
        raise KdzooError(f"command {name!r} is no longer installed (its plugin failed to load; see kdzoo plugins)")
    parser = _Parser(prog=f"kdzoo {name}", description=entry.meta.get("help") or None)
    if entry.meta.get("setup") is not None:
        entry.meta["setup"](parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # its --help (0) or a bad flag (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
    code = entry.obj(args)
    return 0 if code is None else int(code)


COMMANDS = {"distill": cmd_distill, "completion": cmd_completion, "teacher": cmd_teacher, "eval": cmd_eval, "compare": cmd_compare, "bench": cmd_bench, "tune": cmd_tune,
            "report": cmd_report, "runs": cmd_runs, "cache": cmd_cache,
            "strategies": cmd_list, "plugins": cmd_list, "models": cmd_list, "datasets": cmd_list}


ERROR_LINE_LIMIT = 500  # characters of an error line; --debug prints it whole


def readable(line: str, limit: int = ERROR_LINE_LIMIT) -> str:
    """``line`` cut to ``limit`` characters, saying how much was left out and where to see it."""
    if len(line) <= limit:
        return line
    return f"{line[:limit]}... ({len(line) - limit:,} more characters; rerun with --debug for the whole line)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kdzoo`` command; returns the exit code.

    A user-caused error is one line and exit 2 (``--debug`` adds the traceback); an unexpected
    internal error is one line pointing to ``--debug`` and exit 1; a closed stdout pipe
    (``kdzoo strategies | head``) ends quietly.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("KDZOO_DEBUG") == "1"
    previous_debug = os.environ.get("KDZOO_DEBUG")
    if debug:
        os.environ["KDZOO_DEBUG"] = "1"  # plugin loading (kdzoo.zoo.plugins) prints its tracebacks too
    try:
        snapshot = _snapshot(argv)
        parser = _parser(snapshot)
        if "_ARGCOMPLETE" in os.environ:
            _autocomplete(parser)
        first = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
        if first is not None and argv[first] in _names(snapshot or {}, "commands"):
            return run_plugin_command(argv[first], argv[first + 1:])
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help/--version (0) or a bad flag (2, one line already printed)
            return exc.code if isinstance(exc.code, int) else 2
        args.listing = snapshot
        debug = getattr(args, "debug", False) or debug
        return COMMANDS[args.command](args)
    except KdzooError as exc:
        if debug:
            traceback.print_exc()
        print(error_line(exc) if debug else readable(error_line(exc)), file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"kdzoo: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except BrokenPipeError:
        # the reader went away; point stdout at devnull so the interpreter's final flush is quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("kdzoo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"kdzoo: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
              f"(unexpected; rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if previous_debug is None:
            os.environ.pop("KDZOO_DEBUG", None)


def _snapshot(argv: list[str]) -> dict[str, Any] | None:
    """The listing snapshot, unless the command needs none (``--version``, a built-in command's run).

    ``kdzoo --help``, the listings, completion and plugin commands need it; a built-in command such
    as ``distill`` does not, so a run never pays for building it.
    """
    first = next((a for a in argv if not a.startswith("-")), None)
    if "_ARGCOMPLETE" in os.environ or first is None or first not in BUILTIN_COMMANDS or first in (
            "strategies", "models", "datasets", "plugins"):
        if "--version" in argv and first is None:
            return None
        return listing()
    return None


def _autocomplete(parser: argparse.ArgumentParser) -> None:
    try:
        import argcomplete
    except ImportError:
        return
    argcomplete.autocomplete(parser)
