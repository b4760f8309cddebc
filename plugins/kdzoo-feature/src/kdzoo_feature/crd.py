"""CRD — Tian, Krishnan & Isola, "Contrastive Representation Distillation", ICLR 2020, arXiv:1910.10699.

The student's and the teacher's pre-logit features ``[B, Ds]`` / ``[B, Dt]`` go through linear
embedding heads to ``feat_dim`` and are L2-normalised (``v_s``, ``v_t``). Two memory banks ``[N, D]``
hold a momentum average of each model's embedding of every training sample, addressed by the
dataset index (``Batch.index``). For each sample, the positive is its own row and ``K`` negatives are
rows drawn uniformly from the ``N`` training samples; with ``P(j | v) = exp(<m_j, v> / T) / Z``
(``Z`` fixed from the first batch as ``N * mean exp(...)``), NCE (:func:`kdzoo.losses.nce_contrast_loss`)
is applied to the student's embedding against the teacher's bank and to the teacher's embedding
against the student's bank, and the two are summed. After the step, each sample's rows become
``normalize(momentum * m + (1 - momentum) * v)``. As RepDistiller's ``CRDLoss`` / ``ContrastMemory``
(HobbitLong/RepDistiller), with the paper's uniform noise distribution; RepDistiller's CIFAR loader
(``mode="exact"``) instead draws the negatives among samples of other classes, which is not done here.

Negatives are drawn from a generator seeded with ``(seed, rank, draw count)``; the draw count, the
two banks and the ``Z`` constants are buffers, so the strategy's ``state_dict`` (the checkpoint)
resumes exactly. Under DDP the embeddings and indices of every rank are gathered before the bank
update and ``Z`` is averaged over ranks, so every rank holds the same banks. A run whose batches
are synthetic (a data-free member in the stack) or that has no training set is refused when built,
and a training batch with samples of index -1 (your own DataLoader) when it arrives.

The terms are :func:`kdzoo.losses.contrast_scores` and :func:`kdzoo.losses.nce_contrast_loss`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from kdzoo.plugin import ConfigError, Needs, Requirement, RunContext, Strategy, param
from kdzoo.losses import contrast_scores, nce_contrast_loss


@dataclass
class CRDConfig:
    """CRD parameters (each field: default, bounds, help)."""

    weight: float = param(0.8, ge=0, help="weight of the CRD term (RepDistiller's ``-b 0.8``).")
    ce_weight: float = param(1.0, ge=0, help="weight of the hard-label cross-entropy (``-r 1``).")
    feat_dim: int = param(128, ge=1, help="width of the embedding heads and memory rows.")
    negatives: int = param(16384, ge=1, help="negatives K per sample, drawn uniformly from the training set.")
    temperature: float = param(0.07, gt=0, help="NCE temperature T.")
    momentum: float = param(0.5, ge=0, lt=1, help="memory-bank momentum of the row update.")


def _gather(t: Tensor) -> Tensor:
    """Concatenate ``t [b, ...]`` over every DDP rank (rank order); ``t`` itself without DDP."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    sizes = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([t.shape[0]], device=t.device))
    most = int(max(s.item() for s in sizes))
    padded = torch.zeros((most, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def _mean_over_ranks(t: Tensor) -> Tensor:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()


class CRD(Strategy):
    """Contrastive representation distillation: embedding heads, momentum memory banks, NCE."""

    name = "crd"
    family = "feature"
    paper = "Tian et al. ICLR 2020, arXiv:1910.10699"
    Config = CRDConfig
    presets = {"paper": {"weight": 0.8, "ce_weight": 1.0, "feat_dim": 128, "negatives": 16384,
                         "temperature": 0.07, "momentum": 0.5},
               "cpu": {"negatives": 1024},
               "smoke": {"negatives": 64, "feat_dim": 32}}
    label_space = "any"

    def __init__(self, config: CRDConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        synthetic = [spec.name for spec in getattr(ctx.config, "strategy", None) or []
                     if ctx.zoo is not None and not ctx.zoo.strategy(spec.name).obj.reads_train_data]
        if ctx.bundle is None or len(ctx.bundle.x) == 0 or synthetic:
            why = f"its batches come from {'+'.join(synthetic)}" if synthetic else "it has no training set"
            raise ConfigError(f"crd: needs training data with stable dataset indices (Batch.index) for its "
                              f"memory bank; {why}")
        d_s, d_t = ctx.student.num_features, ctx.teacher.num_features
        for model, d in ((ctx.student, d_s), (ctx.teacher, d_t)):
            if d <= 0:
                raise ConfigError(f"crd: model {model.meta['name']!r} reports no num_features (pre-logit width)")
        self.n_data = len(ctx.bundle.x)
        self.seed, self.rank = ctx.seed, ctx.rank
        self.embed_s = nn.Linear(d_s, config.feat_dim)
        self.embed_t = nn.Linear(d_t, config.feat_dim)
        g = torch.Generator().manual_seed(ctx.seed)
        stdv = 1.0 / math.sqrt(config.feat_dim / 3)
        # RepDistiller's initialisation: uniform in [-stdv, stdv]; memory_s holds student rows, memory_t teacher rows
        self.register_buffer("memory_s", torch.rand(self.n_data, config.feat_dim, generator=g) * 2 * stdv - stdv)
        self.register_buffer("memory_t", torch.rand(self.n_data, config.feat_dim, generator=g) * 2 * stdv - stdv)
        self.register_buffer("z", torch.full((2,), -1.0))  # Z of the student's and the teacher's scores
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))
        self._built_as = id(self)  # a deep copy (the trainer's gradient-path probe) has another id

    def needs(self) -> Needs:
        return Needs(Requirement(logits=True, pooled=True), Requirement(pooled=True))

    def term_weights(self) -> dict[str, float]:
        return {"crd": self.config.weight, "label": self.config.ce_weight}

    def sample(self, index: Tensor) -> Tensor:
        """Memory rows of each sample: ``[B, K + 1]``, its own index first, then ``K`` uniform draws."""
        g = torch.Generator().manual_seed(hash((self.seed, self.rank, int(self.draws))) & 0x7FFFFFFF)
        negatives = torch.randint(self.n_data, (len(index), self.config.negatives), generator=g)
        return torch.cat([index.cpu().view(-1, 1), negatives], 1).to(self.memory_s.device)

    def forward(self, batch, student, teacher, step):
        index = batch.index
        if int(index.max()) >= self.n_data:
            raise ConfigError(f"crd: Batch.index {int(index.max())} is outside the {self.n_data} "
                              f"samples of the memory bank")
        v_s = F.normalize(self.embed_s(student.pooled.flatten(1)), dim=1)
        v_t = F.normalize(self.embed_t(teacher.pooled.detach().flatten(1)), dim=1)
        known = index >= 0
        if not bool(known.all()) and id(self) == self._built_as:
            raise ConfigError("crd: a training batch has samples without a dataset index (Batch.index -1, e.g. "
                              "your own DataLoader); its memory bank needs stable indices")
        # only a deep copy gets here with index -1: the trainer's gradient-path probe, whose synthetic samples
        # address row 0 and update no bank of the run
        idx = self.sample(index.clamp_min(0))
        d = self.config.feat_dim
        rows_t = self.memory_t[idx.view(-1)].view(len(index), -1, d)
        rows_s = self.memory_s[idx.view(-1)].view(len(index), -1, d)
        out_s = contrast_scores(v_s, rows_t.to(v_s.dtype), self.config.temperature)  # student vs teacher bank
        out_t = contrast_scores(v_t, rows_s.to(v_t.dtype), self.config.temperature)  # teacher vs student bank
        if self.training:
            with torch.no_grad():
                if self.z[0] < 0:
                    self.z.copy_(_mean_over_ranks(torch.stack([out_s.mean(), out_t.mean()]).float() * self.n_data))
                self.draws += 1
                self._update(_gather(index[known].to(self.memory_s.device)), _gather(v_s.detach()[known].float()),
                             _gather(v_t.detach()[known].float()))
        z = self.z.clamp_min(1e-12).to(out_s.dtype)
        loss = nce_contrast_loss(out_s / z[0], self.n_data) + nce_contrast_loss(out_t / z[1], self.n_data)
        return {"crd": loss}

    def _update(self, index: Tensor, v_s: Tensor, v_t: Tensor) -> None:
        m = self.config.momentum
        for memory, v in ((self.memory_s, v_s), (self.memory_t, v_t)):
            rows = memory[index] * m + v * (1 - m)
            memory.index_copy_(0, index, F.normalize(rows, dim=1))
