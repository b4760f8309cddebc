"""The view store: the teacher's logits on every augmented view, computed once and replayed.

With random augmentation each sample's view is a pure function of (view seed, draw, index)
(:mod:`kdzoo.data.views`), so the teacher sees exactly the student's view and its outputs for
``(sample, draw)`` never change ("function matching", Beyer et al. 2022; stored soft labels as in
FKD, Shen & Xing 2022). The store keeps them:

* one shard per (draw, pool): the teacher's logits on draw ``d`` of every sample of the labelled
  or the unlabelled pool, filled the first time a batch needs it, in ``float16`` (logits, not
  probabilities, so any temperature, DKD's split or logit standardisation works from them;
  ``float32`` if a logit exceeds ``float16``'s range); with more than :data:`TOPK_ABOVE` classes only
  the top :data:`TOPK` logits and the log-sum-exp are kept;
* keyed by the teacher's weights, how the teacher is run to fill it (float32, eager, its own memory
  format, the device kind), the data (content, split,
  pools) and the view config (augmentation settings and view seed), so any change is another
  store. The view seed is independent of the run seed by default: one store serves every seed;
* concurrent fillers take the store's lock (``filelock``) and write each shard atomically with its
  SHA-256; a damaged shard is moved aside and rebuilt, with one line saying so.

Replayed logits equal a live teacher's on the same views up to ``float16`` rounding: within
``1e-3 * max(1, |logit|)``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import Tensor

from ..atomic import write_text
from ..config import DataConfig
from ..contract.strategy import Outputs, Requirement
from ..data import DatasetBundle
from ..integrity import DamagedFile, move_aside
from ..models.wrapper import KDModel
from .sealed import damage, load_sealed, save_sealed
from .teacher_cache import canonical_teacher, fill_spec, samples_digest, teacher_digest, teacher_input

TOPK_ABOVE = 100  # classes above which only the top-k logits are stored
TOPK = 32
FLOAT16_MAX = 65504.0
POOLS = ("labelled", "unlabelled")
TOLERANCE = "|stored - live| <= 1e-3 * max(1, |live|) (float16 rounding)"


def view_config(cfg: DataConfig, view_seed: int) -> dict[str, Any]:
    """The settings that decide every view (in the store's key)."""
    out: dict[str, Any] = {"augment": cfg.augment, "view_seed": view_seed}
    if cfg.augment in ("shift", "shift-flip"):
        out["shift_pixels"] = cfg.shift_pixels
    if cfg.augment in ("shift-flip", "timm"):
        out["hflip"] = cfg.hflip
    if cfg.augment == "timm":
        out.update(auto_augment=cfg.auto_augment, crop_scale=list(cfg.crop_scale), image_size=cfg.image_size)
    return out


def store_key(teacher: KDModel, bundle: DatasetBundle, labelled: Tensor, unlabelled: Tensor, cfg: DataConfig,
              view_seed: int, device: torch.device,
              memory_format: torch.memory_format = torch.contiguous_format) -> tuple[str, dict[str, Any]]:
    """``(key, spec)``: the store's name and everything it was derived from."""
    pools = torch.cat([labelled, unlabelled]).numpy()
    spec = {
        "format": 1, "teacher": teacher_digest(teacher), "fill": fill_spec(device, memory_format),
        "data": samples_digest(bundle, np.sort(pools)),
        "pools": hashlib.sha256(labelled.numpy().astype(np.int64).tobytes() + b"|"
                                + unlabelled.numpy().astype(np.int64).tobytes()).hexdigest(),
        "views": view_config(cfg, view_seed),
        "topk": TOPK if len(bundle.classes) > TOPK_ABOVE else None,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24], spec


class ViewStore:
    """The teacher's logits for every (sample, draw) a run's batch plan yields.

    Args:
        teacher: the frozen teacher (a canonical float32, contiguous copy fills the store).
        plan: the run's batch plan: its pools, view seed and ``views(index, draw)``.
        root: the stores' folder (this store lives in ``root/KEY``).
        batch_size: forward batch size when filling.
        device: where the teacher runs (its kind is in the key).
        log: where a rebuilt shard is reported.
        memory_format: the teacher's own memory format (in the key).
    """

    keep_in_memory = 4  # shards held in memory (a draw of each pool, and the next ones)

    def __init__(self, teacher: KDModel, plan: Any, root: Path, batch_size: int, device: torch.device,
                 log=print, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        base = getattr(plan, "plan", plan)  # a StreamingPlan wraps the in-memory plan
        self.plan, self.bundle, self.device, self.log = plan, base.bundle, device, log
        self.pools = {"labelled": base.labelled, "unlabelled": base.unlabelled}
        self.batch_size = batch_size
        self.key, self.spec = store_key(teacher, base.bundle, base.labelled, base.unlabelled, base.cfg,
                                        base.view_seed, device, memory_format)
        self.memory_format = memory_format
        self.folder = Path(root) / self.key
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "store.json").exists():
            write_text(self.folder / "store.json", json.dumps(self.spec, indent=1, sort_keys=True) + "\n")
        self._teacher_source = teacher
        self._teacher: KDModel | None = None
        self.num_classes = len(base.bundle.classes)
        self._shards: OrderedDict[tuple[int, str], tuple[Tensor, Tensor]] = OrderedDict()
        self.fill_seconds, self.filled, self.loaded = 0.0, 0, 0

    # -- shards --------------------------------------------------------------------------------------
    def shard_path(self, draw: int, pool: str) -> Path:
        return self.folder / f"draw-{draw:06d}-{pool}.safetensors"

    def _shard(self, draw: int, pool: str) -> tuple[Tensor, Tensor]:
        """``(row [N], logits [n, K] float32)`` of one shard: from memory, from disk, or filled now."""
        key = (draw, pool)
        if key in self._shards:
            self._shards.move_to_end(key)
            return self._shards[key]
        path = self.shard_path(draw, pool)
        with FileLock(str(self.folder / "fill.lock")):  # one filler per store at a time; shards are atomic
            data = None
            if path.exists():
                try:
                    data = load_sealed(path, "view store shard")[0]
                    self.loaded += 1
                except DamagedFile as exc:
                    aside = move_aside(path)
                    self.log(f"view store shard {path.parent.name}/{path.name} was damaged ({damage(exc)}); "
                             f"moved aside to {aside.name} and rebuilt")
            if data is None:
                data = self._fill(draw, pool)
                save_sealed(data, path)
        rows = torch.full((len(self.bundle.x),), -1, dtype=torch.long)
        rows[data["index"]] = torch.arange(len(data["index"]))
        entry = rows, self._logits(data)
        self._shards[key] = entry
        while len(self._shards) > self.keep_in_memory:
            self._shards.popitem(last=False)
        return entry

    @torch.no_grad()
    def _fill(self, draw: int, pool: str) -> dict[str, Tensor]:
        tick = time.perf_counter()
        if self._teacher is None:
            self._teacher = canonical_teacher(self._teacher_source, self.memory_format).to(self.device)
        index = torch.sort(self.pools[pool]).values
        chunks = []
        for start in range(0, len(index), self.batch_size):
            part = index[start:start + self.batch_size]
            x = teacher_input(self.plan.views(part, torch.full_like(part, draw)).to(self.device), self.memory_format)
            chunks.append(self._teacher.outputs(x, _LOGITS).logits.float().cpu())
        logits = torch.cat(chunks) if chunks else torch.zeros((0, self.num_classes))
        data = {"index": index.long()}
        if self.spec["topk"]:
            values, where = logits.topk(self.spec["topk"], dim=1)
            data.update(topk_values=_compact(values), topk_index=where.int(), lse=logits.logsumexp(1))
        else:
            data["logits"] = _compact(logits)
        self.fill_seconds += time.perf_counter() - tick
        self.filled += 1
        return data

    def _logits(self, data: dict[str, Tensor]) -> Tensor:
        if "logits" in data:
            return data["logits"].float()
        return expand_topk(data["topk_values"].float(), data["topk_index"].long(), data["lse"], self.num_classes)

    # -- serving -------------------------------------------------------------------------------------
    def get(self, index: Tensor, draw: Tensor, labelled: Tensor) -> Outputs:
        """The teacher's logits on the views of samples ``index`` in draws ``draw`` (``labelled``: which pool)."""
        index, draw, labelled = index.cpu(), draw.cpu(), labelled.cpu()
        out = torch.empty((len(index), self.num_classes))
        pool_of = np.where(labelled.numpy(), 0, 1)
        for d, p in sorted(set(zip(draw.tolist(), pool_of.tolist()))):
            sel = (draw == d) & torch.from_numpy(pool_of == p)
            rows, logits = self._shard(int(d), POOLS[p])
            r = rows[index[sel]]
            if (r < 0).any():
                raise KeyError(f"view store {self.key}: draw {d} of the {POOLS[p]} pool does not cover sample "
                               f"{int(index[sel][r < 0][0])}")
            out[sel] = logits[r]
        return Outputs(logits=out.to(self.device))

    def size_bytes(self) -> int:
        """Bytes of the shards on disk."""
        return sum(p.stat().st_size for p in self.folder.glob("draw-*.safetensors"))


_LOGITS = Requirement(logits=True)


def _compact(values: Tensor) -> Tensor:
    """``float16`` where every value fits it, else ``float32`` (a huge logit never becomes inf)."""
    if values.numel() and values.abs().max() > FLOAT16_MAX:
        return values.float()
    return values.half()


def expand_topk(values: Tensor, where: Tensor, lse: Tensor, num_classes: int) -> Tensor:
    """Full logits from the top-k ones: the other classes share the remaining probability mass
    evenly, so the softmax at temperature 1 keeps the top-k probabilities and the total mass."""
    k = values.shape[1]
    top_mass = torch.exp(values - lse[:, None]).sum(1).clamp(max=1 - 1e-7)
    rest = torch.log((1 - top_mass) / max(1, num_classes - k)) + lse
    out = rest[:, None].expand(-1, num_classes).clone()
    out.scatter_(1, where, values)
    return out


def store_refusal(cfg: Any, need: Any, source: Any, plan: Any, bundle: DatasetBundle | None,
                  teacher_dtype: torch.dtype) -> str | None:
    """Why the view store cannot serve this run's randomly augmented views (``None``: it can)."""
    d = cfg.data
    if need.features or need.pooled:
        what = "intermediate feature maps" if need.features else "pooled features"
        return (f"view store off: the strategy needs the teacher's {what}, which the store does not keep; "
                "the teacher runs live on every view")
    if source is not None:
        return None  # a data source's synthetic batches are no views of stored samples
    if d.mixup or d.cutmix:
        mixed = ", ".join(f"data.{k}={getattr(d, k)}" for k in ("mixup", "cutmix") if getattr(d, k))
        return (f"view store off: {mixed} mixes pairs of samples per batch, so a view is not one sample's; "
                "the teacher runs live on every batch")
    if teacher_dtype != torch.float32:
        return (f"view store off: runtime.teacher_dtype={str(teacher_dtype).removeprefix('torch.')} (the store holds "
                "float32 teacher outputs); the teacher runs live")
    if bundle is not None and not getattr(bundle.x, "deterministic", True):
        return ("view store off: your own Dataset may augment its items (declare `kdzoo_deterministic = True` on it "
                "if it does not, and use data.augment for views); the teacher runs live on every batch")
    return None


__all__ = ["TOLERANCE", "ViewStore", "expand_topk", "store_key", "store_refusal", "view_config"]
