"""Controls and transfer sets of the data-free family.

``noise-kd``: KD on Gaussian noise — the "normal-distribution inputs" baseline of DAFL (Chen et al.,
ICCV 2019, arXiv:1904.01186, Table 1) and DFAD's ``RANDOM`` row (arXiv:1912.11006): the student
distils (KL at ``temperature``) on ``N(0, std^2)`` images in the teacher-normalised space, i.e. the
scale a DAFL/DFAD generator outputs before it has learnt anything. A data-free method is only
interesting by how far it beats this control.

``set-kd``: KD on a fixed transfer set that is not the training data — a cached synthetic set
(e.g. a ``deep-inversion`` pool saved as a tensor file) or out-of-domain images (another dataset:
DAFL's "alternative data", DFAD's KD-REL / KD-UNR rows). Hinton et al. 2015, arXiv:1503.02531.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from kdzoo.plugin import ConfigError, RunContext, param
from kdzoo.losses import kd_loss

from .base import DataFreeStrategy
from .sources import GaussianSource, TensorSource


@dataclass
class NoiseKDConfig:
    """NoiseKD parameters (each field: default, bounds, help)."""

    temperature: float = param(4.0, gt=0, help="temperature of the student's KL.")
    std: float = param(1.0, gt=0, help="noise standard deviation in teacher-normalised units.")
    pool: int = param(
        0, ge=0, help="0 draws fresh noise every step; ``n > 0`` uses one fixed set of ``n`` noise images.")
    batch_size: int | None = param(None, gt=0, help="images per step (default: ``data.batch_size``).")
    grid_every: int | None = param(None, help="steps between PNG grids (default: about 10 per run; 0: none).")


class NoiseKD(DataFreeStrategy):
    """KD on Gaussian noise: the control every data-free method must beat."""

    name = "noise-kd"
    paper = "Chen et al. ICCV 2019, arXiv:1904.01186 (normal-distribution baseline)"
    Config = NoiseKDConfig
    presets = {
        "paper": {"temperature": 1.0, "std": 1.0},  # DAFL's baseline distils like DAFL's student (T = 1)
        "cpu": {"temperature": 4.0, "std": 1.0, "batch_size": 128},
    }

    def __init__(self, config: NoiseKDConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.source = GaussianSource(ctx, std=config.std, pool=config.pool, batch_size=config.batch_size,
                                     grid_every=config.grid_every)

    def forward(self, batch, student, teacher, step):
        return {"kd": kd_loss(student.logits, teacher.logits, self.config.temperature)}


@dataclass
class SetKDConfig:
    """SetKD parameters (each field: default, bounds, help)."""

    path: str = param(
        "", help="a tensor file of images ``[N, C, H, W]`` in data space (``.pt``/``.safetensors``, key ``images``), or"
           " a kdzoo dataset spec other than the run's (``digits``, ``imagefolder:PATH``).")
    data_root: str | None = param(None, help="local root for a torchvision dataset spec.")
    temperature: float = param(4.0, gt=0, help="temperature of the student's KL.")
    batch_size: int | None = param(None, gt=0, help="images per step (default: ``data.batch_size``).")
    grid_every: int | None = param(None, help="steps between PNG grids (default: about 10 per run; 0: none).")

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("strategy.set-kd.path is required: a tensor file of images or another dataset")


def load_images(path: str, data_root: str | None, ctx: RunContext) -> torch.Tensor:
    """Images ``[N, C, H, W]`` (data space) of a tensor file or of another dataset's train split."""
    file = Path(path)
    if file.suffix in (".pt", ".pth", ".safetensors"):
        if not file.exists():
            raise ConfigError(f"strategy.set-kd.path {path!r} does not exist")
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(file))
        else:
            obj = torch.load(str(file), map_location="cpu", weights_only=True)
        images = obj.get("images") if isinstance(obj, dict) else obj
        if not isinstance(images, torch.Tensor):
            raise ConfigError(f"{path!r} holds no image tensor (save a tensor, or a dict with key 'images')")
        return images.float()
    from kdzoo.data import load_dataset, to_float

    base = lambda spec: spec.split(":")[0]  # noqa: E731
    if base(path) == base(ctx.config.data.name):
        raise ConfigError(f"set-kd would read the run's own data {path!r}; name another dataset or a tensor file")
    bundle = load_dataset(path, data_root, ctx.zoo)
    if bundle.x.dim() != 4:
        raise ConfigError(f"set-kd: dataset {path!r} holds no images")
    return to_float(bundle.x)


class SetKD(DataFreeStrategy):
    """KD on a fixed transfer set: a cached synthetic set or out-of-domain images."""

    name = "set-kd"
    paper = "Hinton et al. 2015, arXiv:1503.02531 (on a transfer set)"
    Config = SetKDConfig
    presets = {"paper": {"temperature": 4.0}, "cpu": {"temperature": 4.0, "batch_size": 128},
               "smoke": {"path": "digits"}}  # another dataset than the conformance run's

    def __init__(self, config: SetKDConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        images = load_images(config.path, config.data_root, ctx)
        self.source = TensorSource(ctx, images, batch_size=config.batch_size, grid_every=config.grid_every)

    def forward(self, batch, student, teacher, step):
        return {"kd": kd_loss(student.logits, teacher.logits, self.config.temperature)}


__all__ = ["NoiseKD", "SetKD", "load_images"]
