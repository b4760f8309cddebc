"""Real datasets read from local files, as data only (nothing in a file is ever run).

- MNIST and Fashion-MNIST: the four IDX files as published (``*-ubyte`` or ``*-ubyte.gz``), in any
  folder (e.g. Debian's ``/usr/share/datasets/fashion-mnist``) or in torchvision's layout
  (``ROOT/FashionMNIST/raw``).
- CIFAR-10/100: the python batches (``cifar-10-batches-py``, ``cifar-100-python``), unpickled by an
  unpickler that allows numpy's array reconstruction and nothing else.
- ``imagefolder:PATH``: images stay on disk and keep their own sizes; :class:`LazyImages` reads
  them on demand (see :mod:`kdzoo.data.stream` for the training transforms).

Nothing downloads unless ``data.download`` is set (then torchvision fetches the files into
``data.root`` and they are read from there like any local copy).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..contract.errors import ConfigError
from .memory import DatasetBundle

# -- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------------------
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not) as an array of the shape its header declares."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ConfigError(f"{str(path)!r} cannot be read as an IDX file ({type(exc).__name__}: {exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ConfigError(f"{str(path)!r} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise ConfigError(f"{str(path)!r}: header declares shape {dims} but holds {len(body)} bytes (truncated file?)")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def find_idx_folder(root: Path, torchvision_name: str) -> Path | None:
    """The folder holding the four IDX files: ``root`` itself or torchvision's ``root/NAME/raw``."""
    for folder in (root, root / torchvision_name / "raw", root / torchvision_name, root / "raw"):
        if all(_idx_file(folder, name) is not None for pair in IDX_FILES.values() for name in pair):
            return folder
    return None


def _idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def idx_loader(name: str, torchvision_name: str, classes: list[str]):
    """A loader for an IDX dataset (60,000 train + 10,000 test 28x28 grey images for both)."""

    def load(arg: str | None, root: str | None, download: bool = False, test: bool = True, **_: Any) -> DatasetBundle:
        if not root:
            raise ConfigError(f"dataset {name!r} needs --data-root: a folder with the four *-ubyte(.gz) IDX files "
                              f"(or torchvision's {torchvision_name}/raw); set data.download=true to fetch them")
        folder = find_idx_folder(Path(root), torchvision_name)
        if folder is None and download:
            import torchvision.datasets as tvd

            getattr(tvd, torchvision_name)(root, train=True, download=True)
            folder = find_idx_folder(Path(root), torchvision_name)
        if folder is None:
            wanted = ", ".join(n + "[.gz]" for pair in IDX_FILES.values() for n in pair)
            raise ConfigError(f"dataset {name!r}: no folder under {root!r} holds {wanted} (looked in ROOT and "
                              f"ROOT/{torchvision_name}/raw); kdzoo never downloads unless data.download=true")
        parts = {"test": _no_test((1, 28, 28))}
        for split, (images, labels) in IDX_FILES.items():
            if split == "test" and not test:  # kdzoo tune: the test files are never opened
                continue
            x = read_idx(_idx_file(folder, images))
            y = read_idx(_idx_file(folder, labels))
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise ConfigError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not match")
            parts[split] = (torch.from_numpy(x.astype(np.uint8)).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))
        (x, y), (tx, ty) = parts["train"], parts["test"]
        return DatasetBundle(x, y, classes=list(classes), test_x=tx, test_y=ty, name=name)

    load.__doc__ = f"{torchvision_name} from its four IDX files in --data-root (any folder, or torchvision's layout)."
    return load


def _no_test(sample_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """An empty official test split (``test=False``): the split stays official, so train/val are unchanged."""
    return torch.zeros((0, *sample_shape), dtype=torch.uint8), torch.zeros(0, dtype=torch.long)


# -- CIFAR python batches ---------------------------------------------------------------------------
NUMPY_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 spell bytes as latin-1 text
})


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Reads pickles of plain containers and numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")


def read_data_pickle(path: Path) -> dict:
    """A CIFAR batch file as a dict with ``str`` keys (Python 2 pickles store ``bytes`` keys)."""
    try:
        with open(path, "rb") as f:
            data = NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as exc:
        raise ConfigError(f"{str(path)!r} is not a CIFAR data batch ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} holds a {type(data).__name__}, not a CIFAR batch dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta",
                "labels", "label_names", "CIFAR10"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names", "CIFAR100"),
}


def cifar_loader(name: str):
    folder_name, train_files, test_files, meta_file, label_key, names_key, tv_name = CIFAR_LAYOUT[name]

    def read(folder: Path, files: list[str]) -> tuple[Tensor, Tensor]:
        xs, ys = [], []
        for file in files:
            batch = read_data_pickle(folder / file)
            data, labels = np.asarray(batch.get("data")), np.asarray(batch.get(label_key))
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
                raise ConfigError(f"{folder / file}: expected 'data' [N, 3072] and {len(data)} {label_key!r}, got "
                                  f"{data.shape} and {labels.shape}")
            xs.append(data.astype(np.uint8).reshape(-1, 3, 32, 32))
            ys.append(labels.astype(np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))

    def load(arg: str | None, root: str | None, download: bool = False, test: bool = True, **_: Any) -> DatasetBundle:
        if not root:
            raise ConfigError(f"dataset {name!r} needs --data-root: the folder holding {folder_name}/ "
                              "(set data.download=true to fetch it)")
        base = Path(root)
        folder = base if base.name == folder_name else base / folder_name
        if not (folder / meta_file).is_file() and download:
            import torchvision.datasets as tvd

            getattr(tvd, tv_name)(root, train=True, download=True)
        missing = [f for f in [meta_file, *train_files, *test_files] if not (folder / f).is_file()]
        if missing:
            raise ConfigError(f"dataset {name!r}: {folder} lacks {', '.join(missing)} (the python version of the "
                              "batches); kdzoo never downloads unless data.download=true")
        meta = read_data_pickle(folder / meta_file)
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get(names_key, [])]
        (x, y), (tx, ty) = read(folder, train_files), read(folder, test_files) if test else _no_test((3, 32, 32))
        return DatasetBundle(x, y, classes=classes, test_x=tx, test_y=ty, name=name)

    load.__doc__ = f"{tv_name} from its python batches under --data-root (unpickled as numpy data only)."
    return load


# -- image folders ----------------------------------------------------------------------------------
GREY_MODES = ("L", "1", "I", "I;16", "LA")


class LazyImages:
    """Images on disk behind a tensor-like view ``uint8 [N, C, H, W]``.

    Indexing (``images[indices]``) reads the files and gives each image at the view size: its
    shorter side resized to fit, then a centre crop (no image is squashed to another's aspect).
    Training transforms read the original image with :meth:`pil` and crop it themselves.

    Args:
        files: one image path per sample.
        channels: 1 (every image is greyscale) or 3.
        size: ``(H, W)`` of the view.
    """

    dtype = torch.uint8

    def __init__(self, files: list[str], channels: int, size: tuple[int, int]) -> None:
        self.files, self.channels, self.size = list(files), channels, (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.files), self.channels, *self.size))

    def dim(self) -> int:
        return 4

    def take(self, index: Any) -> LazyImages:
        """A view of the samples at ``index`` (nothing is read)."""
        return LazyImages([self.files[i] for i in _positions(index, len(self))], self.channels, self.size)

    def pil(self, i: int):
        """Image ``i`` as a PIL image in this view's mode (``L`` or ``RGB``), at its own size."""
        from PIL import Image

        try:
            with Image.open(self.files[i]) as img:
                return img.convert("L" if self.channels == 1 else "RGB")
        except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
            raise ConfigError(f"cannot read image {self.files[i]!r} ({type(exc).__name__}); remove or replace it") \
                from None

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, (int, np.integer)):
            return self[[int(index)]][0]
        out = [fit_and_crop(self.pil(i), self.size) for i in _positions(index, len(self))]
        return torch.stack(out) if out else torch.zeros((0, self.channels, *self.size), dtype=torch.uint8)


def _positions(index: Any, n: int) -> list[int]:
    if isinstance(index, slice):
        return list(range(n))[index]
    if isinstance(index, Tensor):
        index = index.tolist()
    return [int(i) for i in np.asarray(index).reshape(-1)]


def fit_and_crop(img, size: tuple[int, int]) -> Tensor:
    """``uint8 [C, H, W]``: the image's shorter side resized to cover ``size``, then centre-cropped."""
    from PIL import Image

    h, w = size
    scale = max(h / img.height, w / img.width)
    new = (max(w, round(img.width * scale)), max(h, round(img.height * scale)))
    if new != img.size:
        img = img.resize(new, Image.BILINEAR)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    arr = np.asarray(img.crop((left, top, left + w, top + h)), dtype=np.uint8)
    t = torch.from_numpy(arr.copy())
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1)


def load_imagefolder(arg: str | None, root: str | None, image_size: list[int] | None = None, test: bool = True,
                     **_: Any) -> DatasetBundle:
    """``imagefolder:PATH``: one sub-folder per class (``train/`` and ``test/`` if present), read lazily.

    ``test=False`` (``kdzoo tune``) never lists or opens ``test/``: the bundle keeps an empty official test split.
    """
    if not arg:
        raise ConfigError("dataset 'imagefolder' needs a path: imagefolder:PATH")
    path = Path(arg)
    if not path.is_dir():
        raise ConfigError(f"imagefolder path {arg!r} is not a directory")
    split_dirs = (path / "train", path / "test")
    has_splits = all(d.is_dir() for d in split_dirs)

    def scan(folder: Path, classes: list[str] | None) -> tuple[list[str], Tensor, list[str]]:
        try:
            found = sorted(e.name for e in os.scandir(folder) if e.is_dir())
        except OSError as exc:
            found = []
            reason = f"; {' '.join(str(exc).split())}"
        else:
            reason = ""
        if not found:  # no class sub-folders, or unreadable folder
            raise ConfigError(f"imagefolder {str(folder)!r} holds no class folders with images "
                              f"(expected {folder}/CLASS/IMAGE{reason})")
        if classes is not None and found != classes:
            raise ConfigError(f"{folder}: classes {found} differ from train's {classes}")
        samples = image_files(folder, found)
        if not samples:
            raise ConfigError(f"imagefolder {str(folder)!r} holds no images")
        return [f for f, _ in samples], torch.tensor([label for _, label in samples], dtype=torch.long), found

    files, y, classes = scan(split_dirs[0] if has_splits else path, None)
    tested = scan(split_dirs[1], classes) if has_splits and test else ([], torch.zeros(0, dtype=torch.long), classes) \
        if has_splits else None
    if tested is not None:
        _refuse_shared_files(files, tested[0], "train", "test")
    channels, first_size = _probe(files + (tested[0] if tested else []))
    size = tuple(image_size) if image_size else first_size
    if len(size) == 1:
        size = (size[0], size[0])
    x = LazyImages(files, channels, size)
    tx = LazyImages(tested[0], channels, size) if tested is not None else None
    return DatasetBundle(x, y, classes=classes, test_x=tx, test_y=tested[1] if tested is not None else None,
                         name=f"imagefolder:{arg}")


def image_files(folder: Path, classes: list[str]) -> list[tuple[str, int]]:
    """``(file, class index)`` of every image under ``folder/CLASS/``, in torchvision ``ImageFolder``'s order.

    Folder links are followed, but no real folder is entered twice (a link loop ends there), and
    a file reached twice counts once; a file reachable from two classes is refused, since it would
    carry two labels.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    samples: list[tuple[str, int]] = []
    owner: dict[str, tuple[str, str]] = {}  # real path -> (class, path as found)
    for label, cls in enumerate(classes):
        seen_dirs: set[str] = set()
        walk = []
        for root, dirs, names in os.walk(folder / cls, followlinks=True):
            real = os.path.realpath(root)
            if real in seen_dirs:
                dirs[:] = []  # entered before (a link loop, or two links to one folder): never again
                continue
            seen_dirs.add(real)
            walk.append((root, names))
        for root, names in sorted(walk):
            for name in sorted(names):
                if not name.lower().endswith(IMG_EXTENSIONS):
                    continue
                file = os.path.join(root, name)
                real = os.path.realpath(file)
                if real in owner:
                    if owner[real][0] != cls:
                        raise ConfigError(f"imagefolder: {owner[real][1]!r} (class {owner[real][0]!r}) and {file!r} "
                                          f"(class {cls!r}) are one file; a sample must have one class")
                    continue
                owner[real] = (cls, file)
                samples.append((file, label))
    return samples


def _refuse_shared_files(train: list[str], test: list[str], a: str, b: str) -> None:
    """Refuse an image in both splits: a test image that is also trained on makes the test score a lie."""
    seen = {os.path.realpath(f): f for f in train}
    for file in test:
        if os.path.realpath(file) in seen:
            raise ConfigError(f"imagefolder: {seen[os.path.realpath(file)]!r} ({a}) and {file!r} ({b}) are one file; "
                              f"an image must be in {a} or in {b}, not both")


def _probe(files: list[str], limit: int = 256) -> tuple[int, tuple[int, int]]:
    """Channels (1 when every probed image is greyscale) and a default view size (the median size)."""
    from PIL import Image

    step = max(1, len(files) // limit)
    modes, heights, widths = set(), [], []
    for file in files[::step][:limit]:
        try:
            with Image.open(file) as img:  # reads the header only
                modes.add(img.mode)
                heights.append(img.height)
                widths.append(img.width)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"imagefolder: cannot read image {file!r} ({type(exc).__name__}); remove or replace it") \
                from None
    channels = 1 if modes <= set(GREY_MODES) else 3
    return channels, (int(np.median(heights)), int(np.median(widths)))


__all__ = ["LazyImages", "NumpyOnlyUnpickler", "cifar_loader", "fit_and_crop", "idx_loader", "load_imagefolder",
           "read_data_pickle", "read_idx"]
