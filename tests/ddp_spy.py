"""torchrun entry for tests: records every file this rank writes, then runs the kdzoo CLI."""

import builtins
import os
import sys

_record = os.path.join(os.environ["KDZOO_SPY_DIR"], f"writes-rank{os.environ.get('RANK', '0')}.txt")
_open, _replace = builtins.open, os.replace


def _log(path):
    with _open(_record, "a") as f:
        f.write(f"{path}\n")


def spy_open(file, mode="r", *args, **kwargs):
    if any(m in mode for m in "wax+") and str(file) != _record:
        _log(file)
    return _open(file, mode, *args, **kwargs)


def spy_replace(src, dst, *args, **kwargs):
    _log(dst)
    return _replace(src, dst, *args, **kwargs)


builtins.open, os.replace = spy_open, spy_replace
open(_record, "a").close()

from kdzoo.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
