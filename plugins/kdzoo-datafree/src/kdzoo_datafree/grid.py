"""PNG artefacts of a data-free run: grids of synthesised images and the accuracy curve.

Written into the seed's run directory (``ctx.run_dir``)::

    RUN/seed-S/synthetic/step-000000.png   a grid of the batch the student got at that step
    RUN/seed-S/curve.png                   validation accuracy against student iterations

Each image is min-max scaled on its own for display (as the DeepInversion authors' grids:
``normalize=True, scale_each=True``), since synthetic pixels need not stay in ``[0, 1]``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def save_grid(images: Tensor, path: str | Path, max_images: int = 64, min_cell: int = 32, pad: int = 2,
              scale_each: bool = True) -> Path:
    """Write up to ``max_images`` images as one PNG grid.

    Args:
        images: ``[B, C, H, W]`` in data space (C = 1 or 3; other counts show channel 0).
        path: the PNG file to write (parents are created).
        max_images: how many images to show.
        min_cell: small images are enlarged (nearest) to at least this many pixels.
        pad: pixels between cells.
        scale_each: min-max scale every image to ``[0, 1]``; else clip to ``[0, 1]``.

    Returns:
        The written path.
    """
    from PIL import Image

    x = images[:max_images].detach().float().cpu()
    if x.dim() != 4:
        raise ValueError(f"save_grid takes images [B, C, H, W], got {tuple(x.shape)}")
    if scale_each:
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        x = (x - lo) / (x.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp_min(1e-8)
    x = x.clamp(0, 1)
    if x.shape[1] not in (1, 3):
        x = x[:, :1]
    scale = max(1, math.ceil(min_cell / max(x.shape[-2:])))
    if scale > 1:
        x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
    b, c, h, w = x.shape
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    canvas = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad) * 0.5
    for i in range(b):
        r, q = divmod(i, cols)
        canvas[:, pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    arr = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[:, :, 0] if c == 1 else arr, mode="L" if c == 1 else "RGB").save(path)
    return path


def read_curve(run_dir: str | Path, key: str = "val/acc") -> list[tuple[int, float]]:
    """``(step, value)`` pairs of ``key`` from a seed directory's ``metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(int(r["step"]), float(r[key])) for r in rows if key in r]


def save_curve(run_dir: str | Path, key: str = "val/acc", path: str | Path | None = None) -> Path | None:
    """Plot ``key`` against student iterations from ``metrics.jsonl`` as ``curve.png``.

    Uses matplotlib when installed, else draws a plain polyline with PIL. Returns the path, or
    ``None`` when there is nothing to plot yet.
    """
    points = read_curve(run_dir, key)
    if not points:
        return None
    path = Path(path) if path is not None else Path(run_dir) / "curve.png"
    steps, values = zip(*points)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _pil_curve(steps, values, path)
    fig, ax = plt.subplots(figsize=(4.5, 3), dpi=100)
    ax.plot(steps, values, marker="o", ms=3)
    ax.set_xlabel("student iterations")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _pil_curve(steps, values, path: Path) -> Path:
    from PIL import Image, ImageDraw

    w, h, m = 400, 260, 30
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    lo, hi = min(values), max(values)
    span_v, span_s = (hi - lo) or 1.0, (max(steps) - min(steps)) or 1
    pts = [(m + (s - min(steps)) / span_s * (w - 2 * m), h - m - (v - lo) / span_v * (h - 2 * m)) for s, v in zip(steps, values)]
    draw.rectangle([m, m, w - m, h - m], outline="gray")
    draw.line(pts, fill="blue", width=2)
    draw.text((m, 5), f"{lo:.1f} .. {hi:.1f}", fill="black")
    img.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    """``kdzoo datafree-curve RUN_DIR...`` (or ``python -m kdzoo_datafree``): (re)write ``curve.png`` in every seed directory.

    During a run the curve is refreshed with each grid, i.e. before the final evaluation; this
    redraws it from the finished ``metrics.jsonl``.
    """
    import sys

    for run in argv if argv is not None else sys.argv[1:]:
        for seed_dir in sorted(Path(run).glob("seed-*")) or [Path(run)]:
            out = save_curve(seed_dir)
            print(out if out is not None else f"{seed_dir}: no metrics.jsonl")
    return 0


__all__ = ["main", "read_curve", "save_curve", "save_grid"]
