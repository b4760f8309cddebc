"""The generator of DAFL and DFAD.

DAFL (Chen et al., ICCV 2019, arXiv:1904.01186) and DFAD (Fang et al. 2019, arXiv:1912.11006) share
one small convolutional generator (DFAD's ``GeneratorA`` is DAFL's net with a width knob ``ngf``):

    z [B, nz] -> Linear -> [B, 2ngf, s/4, s/4] -> BN -> up x2 -> Conv3x3(2ngf, 2ngf) -> BN -> LeakyReLU(0.2)
      -> up x2 -> Conv3x3(2ngf, ngf) -> BN -> LeakyReLU(0.2) -> Conv3x3(ngf, C) -> Tanh -> BN(C, affine=False)

DAFL's code passes ``0.8`` as the positional ``eps`` of the two inner BN layers (a GAN-tutorial
quirk); ``bn_eps`` reproduces it. The output is standardised per channel by the last BN: it lives
in the teacher's *normalised* input space. Sizes that are not multiples of 4 are generated at the
next multiple and resized (bilinear) before the last BN.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


class GeneratorA(nn.Module):
    """DAFL/DFAD generator.

    Args:
        nz: latent size.
        ngf: base width (the authors' 64 gives 128 channels after the linear layer).
        channels: image channels ``C``.
        size: output ``(H, W)``.
        bn_eps: ``eps`` of the two inner BN layers (DAFL: 0.8, DFAD: 1e-5).
    """

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 1, size: tuple[int, int] = (32, 32),
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.nz, self.size = nz, (int(size[0]), int(size[1]))
        self.init = (math.ceil(self.size[0] / 4), math.ceil(self.size[1] / 4))
        self.fc = nn.Linear(nz, 2 * ngf * self.init[0] * self.init[1])
        self.bn0 = nn.BatchNorm2d(2 * ngf)
        self.block1 = nn.Sequential(nn.Conv2d(2 * ngf, 2 * ngf, 3, padding=1), nn.BatchNorm2d(2 * ngf, eps=bn_eps),
                                    nn.LeakyReLU(0.2))
        self.block2 = nn.Sequential(nn.Conv2d(2 * ngf, ngf, 3, padding=1), nn.BatchNorm2d(ngf, eps=bn_eps),
                                    nn.LeakyReLU(0.2), nn.Conv2d(ngf, channels, 3, padding=1), nn.Tanh())
        self.out_bn = nn.BatchNorm2d(channels, affine=False)

    def forward(self, z: Tensor) -> Tensor:
        """Images from latents.

        Args:
            z: ``[B, nz]`` (or ``[B, nz, 1, 1]``).

        Returns:
            ``[B, C, H, W]`` standardised images (teacher-normalised space).
        """
        h = self.fc(z.flatten(1)).view(z.shape[0], -1, *self.init)
        h = self.block1(F.interpolate(self.bn0(h), scale_factor=2))
        h = self.block2(F.interpolate(h, scale_factor=2))
        if tuple(h.shape[-2:]) != self.size:
            h = F.interpolate(h, size=self.size, mode="bilinear", align_corners=False)
        return self.out_bn(h)


__all__ = ["GeneratorA"]
