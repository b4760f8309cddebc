"""Teacher outputs computed once and reused across epochs and strategies.

Valid only when an epoch's inputs are deterministic (no augmentation, real data, no gradients
through the teacher). The key covers the teacher's weights and metadata, the data, the sample
indices and what is cached, so a stale entry can never be served: any change is a new key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .checkpoint import load_checkpoint, save_checkpoint
from ..data import DatasetBundle, to_float
from ..models.wrapper import KDModel
from ..contract.strategy import Outputs, Requirement


def _digest_tensor(h: "hashlib._Hash", t: Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.numpy().tobytes())


def cache_key(teacher: KDModel, bundle: DatasetBundle, indices: np.ndarray, req: Requirement) -> str:
    """Hash of teacher weights + metadata, data content, sample indices and the requested outputs."""
    h = hashlib.sha256()
    h.update(json.dumps(teacher.meta, sort_keys=True, default=str).encode())
    for name, value in sorted(teacher.net.state_dict().items()):
        h.update(name.encode())
        _digest_tensor(h, value)
    h.update(bundle.name.encode())
    _digest_tensor(h, bundle.x[torch.as_tensor(indices)])
    h.update(np.asarray(indices, dtype=np.int64).tobytes())
    h.update(repr((req.logits, req.pooled, req.features)).encode())
    return h.hexdigest()[:24]


class TeacherOutputCache:
    """Teacher logits (and pooled features) for a fixed set of dataset indices.

    Args:
        teacher: the frozen teacher.
        bundle: the dataset.
        indices: dataset indices to cover (the train split).
        req: what to cache (logits and/or pooled; intermediate maps are not cached).
        root: cache folder (entries are ``<key>.pt``).
        batch_size: forward batch size when filling.
        device: where the teacher runs.
    """

    def __init__(self, teacher: KDModel, bundle: DatasetBundle, indices: np.ndarray, req: Requirement, root: Path,
                 batch_size: int, device: torch.device) -> None:
        self.req = Requirement(logits=req.logits, pooled=req.pooled)
        self.key = cache_key(teacher, bundle, indices, self.req)
        self.path = Path(root) / f"{self.key}.pt"
        self.filled_now = False
        if self.path.exists():
            data = load_checkpoint(self.path)
        else:
            data = self._fill(teacher, bundle, indices, batch_size, device)
            save_checkpoint(data, self.path)
            self.filled_now = True
        n = len(bundle.x)
        self.row = torch.full((n,), -1, dtype=torch.long)
        self.row[torch.as_tensor(data["indices"])] = torch.arange(len(data["indices"]))
        self.logits, self.pooled = data.get("logits"), data.get("pooled")
        self.device = device

    @torch.no_grad()
    def _fill(self, teacher: KDModel, bundle: DatasetBundle, indices: np.ndarray, batch_size: int,
              device: torch.device) -> dict[str, Tensor]:
        teacher.eval()
        logits, pooled = [], []
        idx = torch.as_tensor(indices, dtype=torch.long)
        for start in range(0, len(idx), batch_size):
            out = teacher.outputs(to_float(bundle.x[idx[start:start + batch_size]]).to(device), self.req)
            if out.logits is not None:
                logits.append(out.logits.float().cpu())
            if out.pooled is not None:
                pooled.append(out.pooled.float().cpu())
        data = {"indices": idx}
        if logits:
            data["logits"] = torch.cat(logits)
        if pooled:
            data["pooled"] = torch.cat(pooled)
        return data

    def get(self, index: Tensor) -> Outputs:
        """Cached outputs for dataset indices ``index`` ``[B]``."""
        rows = self.row[index.cpu()]
        if (rows < 0).any():
            raise KeyError("teacher-output cache asked for samples it does not cover")
        return Outputs(logits=None if self.logits is None else self.logits[rows].to(self.device),
                       pooled=None if self.pooled is None else self.pooled[rows].to(self.device))
