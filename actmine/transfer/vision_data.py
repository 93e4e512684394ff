"""The image benchmarks' data, in plain numpy, torch and Pillow (no torchvision): the split of
scikit-learn's bundled digits, the CIFAR-10 reader (a safe unpickler for the official batches)
and its batch augmentation, and the ImageNet folder dataset with its crop transforms.

Pillow and scikit-learn are imported by the code that needs them, so importing this module never
fails for want of an optional package.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import DatasetMissing

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGENET_URL = "https://image-net.org/"

# Per-channel statistics of the training sets, used to normalise the inputs.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _digits_split(test_size: int, split_seed: int) -> tuple[np.ndarray, ...]:
    """The fixed stratified split of the 1797 digits: (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    # Pixels are counts 0..16 of a 4x4 block of the original 32x32 bitmaps.
    x = (data.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y, random_state=split_seed)
    return x_tr, y_tr, x_te, y_te


# -- CIFAR-10: the reader -----------------------------------------------------------------------


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds what the CIFAR-10 batches contain: dicts, lists, bytes,
    ints and numpy arrays.

    The official distribution *is* a set of Python pickles; refusing every other global means a
    tampered file cannot run code when it is read.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"CIFAR-10 batch refers to {module}.{name}, which a CIFAR-10 batch never contains; refusing to load it"
            )
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):
            module = "numpy._core.multiarray"  # numpy >= 2 moved it (the old name warns)
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        # encoding="bytes": the batches were pickled by Python 2, whose str must stay bytes.
        batch = _CifarUnpickler(f, encoding="bytes").load()
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path} is not a CIFAR-10 batch (no 'data' and 'labels' keys)")
    x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)  # rows are R, G, B planes
    y = np.asarray(labels, dtype=np.int64)
    if len(x) != len(y):
        raise ValueError(f"{path}: {len(x)} images but {len(y)} labels")
    return x, y


_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def _cifar_candidates(data_dir: Path) -> list[Path]:
    return [Path(data_dir) / "cifar-10-batches-py", Path(data_dir)]


def _find_cifar_dir(data_dir: Path) -> Path:
    candidates = _cifar_candidates(data_dir)
    for folder in candidates:
        if all((folder / f).is_file() for f in [*_CIFAR_TRAIN, "test_batch"]):
            return folder
    looked = " and ".join(str(c) for c in candidates)
    raise DatasetMissing(
        f"CIFAR-10 not found: looked for data_batch_1..5 and test_batch in {looked}. "
        f"Download {CIFAR10_URL} and extract it into DATA_DIR "
        f"(tar -xzf cifar-10-python.tar.gz -C {data_dir}), which creates cifar-10-batches-py/."
    )


def load_cifar10(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from the ``cifar-10-batches-py`` pickles.

    Images are uint8 arrays of shape (N, 3, 32, 32), labels int64.  ``data_dir`` may be the
    folder that holds ``cifar-10-batches-py`` or that folder itself.
    """
    folder = _find_cifar_dir(Path(data_dir))
    parts = [_read_cifar_batch(folder / f) for f in _CIFAR_TRAIN]
    x_te, y_te = _read_cifar_batch(folder / "test_batch")
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    return x_tr, y_tr, x_te, y_te


def cifar_augment(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """The standard CIFAR augmentation on a batch (B, C, H, W), independently per image.

    Zero-pad ``padding`` pixels on each side, take a random H x W crop of the padded image, and
    flip it horizontally with probability 1/2 (He et al. 2016, Sec. 4.2).  The random numbers come
    from ``generator`` (a CPU generator, so that a run draws the same crops on any device); the
    crop itself is one gather on ``x``'s device.  Apply it to raw pixels so that the padding is
    black, as torchvision's ``RandomCrop(32, padding=4)`` before ``Normalize``.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    rows = oy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reads the columns backwards
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices on dims 0, 2, 3 around a slice: the result is (B, H, W, C).
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


# -- ImageNet: the reader and transforms --------------------------------------------------------


_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def _imagenet_candidates(data_dir: Path) -> list[Path]:
    return [Path(data_dir) / "imagenet", Path(data_dir)]


def _find_imagenet_root(data_dir: Path) -> Path:
    candidates = _imagenet_candidates(data_dir)
    for root in candidates:
        if all(_has_class_folder(root / split) for split in ("train", "val")):
            return root
    looked = " and ".join(f"{c}/train, {c}/val" for c in candidates)
    raise DatasetMissing(
        f"ImageNet not found: looked for train/ and val/ folders with one sub-folder per class in "
        f"{looked}. Obtain ILSVRC2012 from {IMAGENET_URL} and arrange train/ and val/ one folder "
        "per class (<wnid>/*.JPEG), e.g. with the standard valprep.sh for the validation images."
    )


def _has_class_folder(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(p.is_dir() for p in folder.iterdir())
    except OSError:
        return False


class ImageFolder(torch.utils.data.Dataset):
    """``root/<class>/<image>`` as (uint8 CHW tensor, label); classes = sorted folder names.

    Decoding and the transforms use Pillow and numpy.  Training samples are augmented with
    :func:`random_resized_crop` and a horizontal flip; evaluation samples are resized so that the
    short side is ``image_size * 256 / 224`` and centre-cropped (the standard single-crop
    protocol).  The random numbers of a sample come from (seed, epoch, index) alone, so an epoch is
    the same whatever the number of loader workers or processes.  Normalisation happens later, on
    the device, so that only uint8 pixels travel through the loader.
    """

    def __init__(
        self, root: Path, train: bool, image_size: int = 224, seed: int = 0, classes: Sequence[str] | None = None
    ):
        root = Path(root)
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.classes = list(classes) if classes is not None else found
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(found) - set(index))
        if unknown:
            raise ValueError(f"{root} has class folders that the training set lacks: {unknown[:5]}")
        # Paths as str: a list of 1.28M str is cheaper to copy into loader workers than Paths.
        self.samples: list[tuple[str, int]] = [
            (str(p), index[c])
            for c in found
            for p in sorted((root / c).iterdir())
            if p.suffix.lower() in _IMAGE_SUFFIXES
        ]
        self.root = root
        self.train = train
        self.image_size = image_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch: loader workers are started per epoch and copy this value."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as img:
            img = img.convert("RGB")  # ImageNet has some greyscale and CMYK JPEGs
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            img = random_resized_crop(img, self.image_size, rng)
            if rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            img = center_crop(img, self.image_size)
        pixels = np.asarray(img, dtype=np.uint8)
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1), label


def random_resized_crop(
    img: Any,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Any:
    """Inception-style crop (Szegedy et al. 2015), torchvision's ``RandomResizedCrop``: a region
    of random area (``scale`` of the image) and aspect ratio (log-uniform in ``ratio``), resized
    to ``size`` x ``size``; after 10 failed draws, the largest central crop within ``ratio``."""
    from PIL import Image

    width, height = img.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            break
    else:
        in_ratio = width / height
        if in_ratio < ratio[0]:
            w, h = width, int(round(width / ratio[0]))
        elif in_ratio > ratio[1]:
            w, h = int(round(height * ratio[1])), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    # resize(box=...) crops and resamples in one step, from the full-resolution pixels.
    return img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))


def center_crop(img: Any, size: int) -> Any:
    """Resize the short side to ``size * 256 / 224`` (256 for 224), then take the central
    ``size`` x ``size`` crop: the standard ImageNet evaluation transform."""
    from PIL import Image

    width, height = img.size
    short = int(round(size * 256 / 224))
    if width <= height:
        new_w, new_h = short, max(short, int(round(height * short / width)))
    else:
        new_w, new_h = max(short, int(round(width * short / height))), short
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return img.crop((left, top, left + size, top + size))


def _fixed_subset(n: int, limit: int | None) -> list[int]:
    """The first ``limit`` indices of a fixed permutation (not of the class-sorted list, which
    would hold only the first classes)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(np.random.default_rng(0).permutation(n)[:limit].tolist())
