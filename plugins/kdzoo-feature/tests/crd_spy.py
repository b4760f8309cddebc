"""Entry for CRD's end-to-end tests: runs the kdzoo CLI and, at exit, saves this rank's CRD state.

The state (memory banks, ``Z``, draw count, embedding heads) goes to ``$KDZOO_SPY_DIR/crd-rank{RANK}.pt``;
a process killed with SIGKILL writes nothing.
"""

import atexit
import os
import sys

import torch

from kdzoo_feature import crd as _crd

_instances = []
_init = _crd.CRD.__init__


def _tracking_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    _instances.append(self)


def _dump():
    if _instances:
        state = {k: v.detach().cpu().clone() for k, v in _instances[-1].state_dict().items()}
        torch.save(state, os.path.join(os.environ["KDZOO_SPY_DIR"], f"crd-rank{os.environ.get('RANK', '0')}.pt"))


_crd.CRD.__init__ = _tracking_init
atexit.register(_dump)

from kdzoo.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
