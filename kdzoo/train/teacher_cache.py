"""Teacher outputs computed once and reused across epochs and strategies.

Valid only when an epoch's inputs are deterministic (no augmentation, real data, no gradients
through the teacher; randomly augmented views go to :mod:`kdzoo.train.view_store`). The key covers
the teacher's weights and metadata, the data, the sample indices, what is cached and how the
teacher is run to fill it, so a stale entry can never be served: any change is a new key.

An entry is a pure function of its key: it is always filled by a copy of the teacher in float32,
eager (never compiled), in the teacher's own memory format (decided by the teacher's architecture
and ``runtime.channels_last``, never by the student's) on the run's device kind, the last two in
the key, so the bytes do not depend on which student's run filled it. Entries carry their
SHA-256; a damaged one is moved aside and rebuilt, with one line saying so.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..data import DatasetBundle, to_float
from ..models.wrapper import KDModel
from ..contract.strategy import Outputs, Requirement
from ..integrity import DamagedFile, move_aside
from .sealed import damage, load_sealed, save_sealed


def _digest_tensor(h: "hashlib._Hash", t: Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.dtype != torch.bool else t.numpy().tobytes())


def teacher_memory_format(teacher: KDModel, setting: str) -> torch.memory_format:
    """The teacher's own memory format: ``runtime.channels_last`` applied to the *teacher's* architecture
    (``auto``: NHWC for a convolutional image model), never the student's, so its outputs do not depend
    on which student it teaches."""
    if setting == "on":
        return torch.channels_last
    if setting == "auto" and teacher.is_image and any(isinstance(m, torch.nn.Conv2d) for m in teacher.modules()):
        return torch.channels_last
    return torch.contiguous_format


def canonical_teacher(teacher: KDModel, memory_format: torch.memory_format) -> KDModel:
    """A private copy of the teacher as cache entries are filled: float32, in ``memory_format``, eval, eager."""
    twin = copy.deepcopy(teacher).float().to(memory_format=memory_format)
    twin.eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def teacher_input(x: Tensor, memory_format: torch.memory_format) -> Tensor:
    """``x`` in the teacher's memory format (images only), whatever layout the student's batch has."""
    return x.contiguous(memory_format=memory_format) if x.dim() == 4 else x.contiguous()


def fill_spec(device: torch.device, memory_format: torch.memory_format) -> dict[str, str]:
    """How cached teacher outputs are computed (part of every key: these settings change the bits)."""
    return {"dtype": "float32", "memory_format": str(memory_format).removeprefix("torch."), "compile": "off",
            "device": device.type, "torch": ".".join(torch.__version__.split(".")[:2])}


def teacher_digest(teacher: KDModel) -> str:
    """SHA-256 of a teacher's metadata and weights (layout-independent: tensors are read contiguous)."""
    h = hashlib.sha256()
    h.update(json.dumps(teacher.meta, sort_keys=True, default=str).encode())
    for name, value in sorted(teacher.net.state_dict().items()):
        h.update(name.encode())
        _digest_tensor(h, value.float() if value.is_floating_point() else value)
    return h.hexdigest()


def samples_digest(bundle: DatasetBundle, indices: np.ndarray) -> str:
    """SHA-256 of the dataset's name, the samples at ``indices`` and the indices themselves.

    A local fingerprint: the bench's cell keys get their own data fingerprint; unify at merge.
    """
    h = hashlib.sha256()
    h.update(bundle.name.encode())
    _digest_tensor(h, bundle.x[torch.as_tensor(indices)])
    h.update(np.asarray(indices, dtype=np.int64).tobytes())
    return h.hexdigest()


def cache_key(teacher: KDModel, bundle: DatasetBundle, indices: np.ndarray, req: Requirement,
              device: torch.device | None = None, memory_format: torch.memory_format = torch.contiguous_format) -> str:
    """Hash of teacher weights + metadata, data content, sample indices, requested outputs and fill settings."""
    spec = {"format": 2, "teacher": teacher_digest(teacher), "data": samples_digest(bundle, indices),
            "outputs": [req.logits, req.pooled], "fill": fill_spec(device or torch.device("cpu"), memory_format)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def load_or_fill(path: Path, fill: Callable[[], dict[str, Tensor]], what: str,
                 log=print) -> tuple[dict[str, Tensor], bool]:
    """An entry's tensors from ``path``, or filled now and written; a damaged file is set aside first.

    Returns:
        ``(tensors, filled_now)``.
    """
    if path.exists():
        try:
            return load_sealed(path, "teacher-output cache entry")[0], False
        except DamagedFile as exc:
            aside = move_aside(path)
            log(f"{what} {path.name} was damaged ({damage(exc)}); moved aside to {aside.name} and rebuilt")
    data = fill()
    save_sealed(data, path)
    return data, True


class TeacherOutputCache:
    """Teacher logits (and pooled features) for a fixed set of dataset indices.

    Args:
        teacher: the frozen teacher.
        bundle: the dataset.
        indices: dataset indices to cover (the train split).
        req: what to cache (logits and/or pooled; intermediate maps are not cached).
        root: cache folder (entries are ``<key>.safetensors``).
        batch_size: forward batch size when filling.
        device: where the teacher runs.
        log: where a rebuilt entry is reported.
        memory_format: the teacher's own memory format (:func:`teacher_memory_format`).
    """

    def __init__(self, teacher: KDModel, bundle: DatasetBundle, indices: np.ndarray, req: Requirement, root: Path,
                 batch_size: int, device: torch.device, log=print,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.req = Requirement(logits=req.logits, pooled=req.pooled)
        self.key = cache_key(teacher, bundle, indices, self.req, device, memory_format)
        self.path = Path(root) / f"{self.key}.safetensors"
        self.memory_format = memory_format
        data, self.filled_now = load_or_fill(
            self.path,
            lambda: self._fill(canonical_teacher(teacher, memory_format), bundle, indices, batch_size, device),
            "teacher-output cache entry", log)
        n = len(bundle.x)
        self.row = torch.full((n,), -1, dtype=torch.long)
        self.row[data["indices"]] = torch.arange(len(data["indices"]))
        self.logits, self.pooled = data.get("logits"), data.get("pooled")
        self.device = device

    @torch.no_grad()
    def _fill(self, teacher: KDModel, bundle: DatasetBundle, indices: np.ndarray, batch_size: int,
              device: torch.device) -> dict[str, Tensor]:
        logits, pooled = [], []
        idx = torch.as_tensor(indices, dtype=torch.long)
        for start in range(0, len(idx), batch_size):
            x = teacher_input(to_float(bundle.x[idx[start:start + batch_size]]).to(device), self.memory_format)
            out = teacher.outputs(x, self.req)
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
