"""Image-classification transfer benchmarks: digits (quick check), CIFAR-10 (ResNet-20), ImageNet (ResNet-50).

Each benchmark trains one network from scratch with the activation plugged into *every*
nonlinearity of the architecture (``make_activation()`` is called once per place) and reports its
test accuracy:

========  ==========  ===============================================  ===========================
name      metric      data                                             network
========  ==========  ===============================================  ===========================
digits    accuracy    scikit-learn's bundled 8x8 UCI digits (offline)  small CNN, seconds on a CPU
cifar10   accuracy    ``cifar-10-batches-py`` (the official pickles)   ResNet-20 (He et al. 2016)
imagenet  top1        ILSVRC2012 as ``train/<wnid>/*.JPEG``, ``val/``  ResNet-50 (He et al. 2016)
========  ==========  ===============================================  ===========================

Everything is plain PyTorch (no torchvision): the architectures, the CIFAR reader, the image
transforms (Pillow + numpy) and the augmentation (torch ops on batches).  Mixed precision is used
on CUDA.  ImageNet training also runs data-parallel under ``torchrun``::

    torchrun --nproc_per_node=8 -m actmine.transfer.vision --activation gelu --data-dir D --epochs 90

Only the standard library, numpy and torch are imported at module level; scikit-learn (digits)
and Pillow (imagenet) are imported by the code that needs them, so importing this module never
fails for want of an optional package.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ActivationFactory, BenchmarkScore, DatasetMissing, register_benchmark

__all__ = [
    "Cifar10",
    "CifarResNet",
    "center_crop",
    "Digits",
    "DigitsCNN",
    "ImageFolder",
    "ImageNet",
    "ResNet",
    "cifar_augment",
    "load_cifar10",
    "main",
    "random_resized_crop",
    "resnet20",
    "resnet50",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGENET_URL = "https://image-net.org/"

# Per-channel statistics of the training sets, used to normalise the inputs.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# -- shared training helpers --------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG (weight initialisation) for the body only.

    ``fork_rng`` restores the caller's RNG state afterwards, so running a benchmark in-process
    does not change what the caller draws next.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _amp(device: torch.device, enabled: bool) -> tuple[Callable[[], Any], Any, str]:
    """(autocast context factory, GradScaler or None, dtype name) for ``device``.

    Mixed precision only on CUDA: bf16 where the GPU has it (no loss scaling needed, same
    exponent range as fp32), fp16 + GradScaler otherwise.  On CPU training stays in fp32, which
    is also what makes CPU runs bit-reproducible.
    """
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext, None, "float32"
    if torch.cuda.is_bf16_supported():
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None, "bfloat16"
    scaler = torch.amp.GradScaler("cuda")
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), scaler, "float16"


def _backward_step(loss: Tensor, optimizer: torch.optim.Optimizer, scaler: Any) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def _cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int,
                     warmup_steps: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to zero (Loshchilov & Hutter 2017), stepped per batch."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps - 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        # Give the device an index so that generators, DDP and checkpoints agree on it.
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def _log(verbose: bool, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


@torch.no_grad()
def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int,
              prepare: Callable[[Tensor], Tensor], autocast: Callable[[], Any]) -> float:
    """Top-1 accuracy of ``model`` on in-memory tensors, in eval mode (BatchNorm running stats)."""
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        with autocast():
            logits = model(prepare(x[start:start + batch_size]))
        correct += int((logits.argmax(1) == y[start:start + batch_size]).sum())
    return correct / max(1, len(x))


# -- digits: the quick check --------------------------------------------------------------------


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 images: conv(w) → act → conv(2w) → act → pool → fc 64 → act → fc 10.

    Three nonlinearities, each a fresh ``make_activation()``.
    """

    def __init__(self, make_activation: ActivationFactory, width: int = 16, hidden: int = 64,
                 num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), make_activation(),
            nn.Conv2d(width, 2 * width, 3, padding=1), make_activation(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * 4 * 4, hidden), make_activation(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def _digits_split(test_size: int, split_seed: int) -> tuple[np.ndarray, ...]:
    """The fixed stratified split of the 1797 digits: (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    # Pixels are counts 0..16 of a 4x4 block of the original 32x32 bitmaps.
    x = (data.images / 16.0).astype(np.float32)[:, None]          # (N, 1, 8, 8)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y,
                                              random_state=split_seed)
    return x_tr, y_tr, x_te, y_te


@register_benchmark
class Digits:
    """8x8 handwritten digits (UCI, the copy bundled with scikit-learn) with a small CNN.

    A fixed stratified split (1347 train / 450 test, chosen by ``split_seed``, independent of the
    run seed) and Adam with a cosine schedule.  With the defaults ReLU reaches about 98% test
    accuracy in two or three seconds on one CPU thread: the quick check of the transfer machinery, used by the
    tests and by ``actmine reproduce``.  ``data_dir`` is not used.

    Options: ``epochs``, ``batch_size``, ``lr``, ``width`` (channels of the first conv),
    ``test_size``, ``split_seed``.
    """

    name = "digits"
    metric = "accuracy"

    def __init__(self, *, epochs: int = 12, batch_size: int = 32, lr: float = 3e-3,
                 width: int = 16, test_size: int = 450, split_seed: int = 0):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.width = width
        self.test_size = test_size
        self.split_seed = split_seed

    def check_data(self, data_dir: Path) -> None:
        try:
            from sklearn.datasets import load_digits
        except ImportError as err:
            raise DatasetMissing(
                "the digits benchmark reads the 8x8 UCI digits bundled with scikit-learn "
                "(sklearn.datasets.load_digits), but scikit-learn is not installed: "
                "pip install scikit-learn") from err
        try:
            load_digits()
        except OSError as err:  # a damaged installation without its data files
            raise DatasetMissing(
                f"scikit-learn is installed but its bundled digits data could not be read ({err}); "
                "reinstall it: pip install --force-reinstall scikit-learn") from err

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path,
            device: str) -> BenchmarkScore:
        self.check_data(data_dir)     # data_dir itself is not used: the data ship with sklearn
        dev = _resolve_device(device)
        started = time.perf_counter()
        x_tr, y_tr, x_te, y_te = (torch.from_numpy(a).to(dev)
                                  for a in _digits_split(self.test_size, self.split_seed))
        generator = torch.Generator().manual_seed(seed)    # the minibatch order
        with _seeded(seed, dev):
            model = DigitsCNN(make_activation, width=self.width).to(dev)
            optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
            steps_per_epoch = math.ceil(len(x_tr) / self.batch_size)
            schedule = _cosine_schedule(optimizer, self.epochs * steps_per_epoch)
            epoch_loss, epochs_done, diverged = float("nan"), 0, False
            for _ in range(self.epochs):
                model.train()
                order = torch.randperm(len(x_tr), generator=generator).to(dev)
                total = torch.zeros((), device=dev)
                for start in range(0, len(order), self.batch_size):
                    idx = order[start:start + self.batch_size]
                    loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
                    _backward_step(loss, optimizer, None)
                    schedule.step()
                    total += loss.detach() * len(idx)
                epoch_loss = float(total) / len(x_tr)
                epochs_done += 1
                if not math.isfinite(epoch_loss):   # nothing more to learn from a NaN network
                    diverged = True
                    break
            accuracy = _accuracy(model, x_te, y_te, 512, lambda x: x, contextlib.nullcontext)
        return BenchmarkScore(accuracy, self.metric, {
            "train_loss": epoch_loss if math.isfinite(epoch_loss) else None,
            "diverged": diverged, "epochs": epochs_done, "n_train": len(x_tr), "n_test": len(x_te),
            "seconds": round(time.perf_counter() - started, 3),
        })


# -- CIFAR-10: the reader -----------------------------------------------------------------------


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds what the CIFAR-10 batches contain: dicts, lists, bytes,
    ints and numpy arrays.

    The official distribution *is* a set of Python pickles; refusing every other global means a
    tampered file cannot run code when it is read.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),   # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which a "
                                         "CIFAR-10 batch never contains; refusing to load it")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):
            module = "numpy._core.multiarray"   # numpy >= 2 moved it (the old name warns)
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        # encoding="bytes": the batches were pickled by Python 2, whose str must stay bytes.
        batch = _CifarUnpickler(f, encoding="bytes").load()
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path} is not a CIFAR-10 batch (no 'data' and 'labels' keys)")
    x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)   # rows are R, G, B planes
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
        f"(tar -xzf cifar-10-python.tar.gz -C {data_dir}), which creates cifar-10-batches-py/.")


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
    rows = oy[:, None] + torch.arange(h, device=x.device)                     # (B, H)
    cols = ox[:, None] + torch.arange(w, device=x.device)                     # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)   # a flip reads the columns backwards
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices on dims 0, 2, 3 around a slice: the result is (B, H, W, C).
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


# -- CIFAR-10: ResNet-20 ------------------------------------------------------------------------


def _init_resnet(model: nn.Module) -> None:
    # He initialisation (He et al. 2015) for convolutions, as in the ResNet papers.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm; the activation after the first and after the sum.

    The shortcut is the paper's option A for CIFAR: identity, and where the shape changes,
    subsampling plus zero channels -- parameter-free, which is what gives ResNet-20 its 0.27M.
    """

    def __init__(self, cin: int, cout: int, stride: int, make_activation: ActivationFactory):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = make_activation()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = make_activation()
        self.stride = stride
        self.extra_channels = cout - cin

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The CIFAR ResNets of He et al. 2016, "Deep Residual Learning for Image Recognition",
    Sec. 4.2 (arXiv:1512.03385): a 3x3 conv, three stages of ``n = (depth - 2) / 6`` basic blocks
    with 16, 32 and 64 channels (stride 2 at the start of stages 2 and 3), global average pooling
    and a linear classifier.  ``depth`` 20 → ResNet-20 (0.27M parameters), 56 → ResNet-56.

    Every nonlinearity (the stem's and two per block) is a fresh ``make_activation()``.
    """

    def __init__(self, make_activation: ActivationFactory, depth: int = 20, num_classes: int = 10,
                 widths: Sequence[int] = (16, 32, 64)):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 56, "
                             f"110, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), make_activation())
        blocks: list[nn.Module] = []
        cin = widths[0]
        for stage, cout in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_BasicBlock(cin, cout, stride, make_activation))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        _init_resnet(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet20(make_activation: ActivationFactory, num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for 32x32 images (He et al. 2016, Sec. 4.2)."""
    return CifarResNet(make_activation, depth=20, num_classes=num_classes)


@register_benchmark
class Cifar10:
    """CIFAR-10 with a ResNet-20 (He et al. 2016), read from the official python pickles.

    The usual recipe: random crop with 4-pixel padding + horizontal flip, per-channel
    normalisation, SGD with Nesterov momentum 0.9, weight decay 5e-4, a cosine learning-rate
    schedule, batch 128; mixed precision on CUDA.  Score: accuracy on the 10,000 test images.
    For reference, the paper reports 91.25% for ReLU after about 164 epochs (64k iterations).

    Options: ``epochs`` (30), ``batch_size`` (128), ``lr`` (0.1), ``momentum``, ``weight_decay``,
    ``depth`` (20; 6n + 2), ``limit_train`` / ``limit_test`` (use only the first N images; None =
    all), ``augment``, ``amp`` (mixed precision on CUDA), ``verbose`` (one line per epoch on
    stderr).
    """

    name = "cifar10"
    metric = "accuracy"

    def __init__(self, *, epochs: int = 30, batch_size: int = 128, lr: float = 0.1,
                 momentum: float = 0.9, weight_decay: float = 5e-4, depth: int = 20,
                 limit_train: int | None = None, limit_test: int | None = None,
                 augment: bool = True, amp: bool = True, verbose: bool = False):
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 56, ...), got {depth}")
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.depth = depth
        self.limit_train = limit_train
        self.limit_test = limit_test
        self.augment = augment
        self.amp = amp
        self.verbose = verbose

    def check_data(self, data_dir: Path) -> None:
        _find_cifar_dir(Path(data_dir))

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path,
            device: str) -> BenchmarkScore:
        dev = _resolve_device(device)
        started = time.perf_counter()
        x_tr, y_tr, x_te, y_te = load_cifar10(Path(data_dir))
        # The batches are already in random order, so the first N images are a fair subset.
        x_tr, y_tr = x_tr[:self.limit_train], y_tr[:self.limit_train]
        x_te, y_te = x_te[:self.limit_test], y_te[:self.limit_test]
        # All of CIFAR-10 fits in GPU memory as uint8 (180 MB): no loader, augmentation on batches.
        x_tr, y_tr, x_te, y_te = (torch.from_numpy(a).to(dev) for a in (x_tr, y_tr, x_te, y_te))
        mean = torch.tensor(CIFAR10_MEAN, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD, device=dev).view(1, 3, 1, 1)
        memory_format = torch.channels_last if dev.type == "cuda" else torch.contiguous_format

        def prepare(x: Tensor) -> Tensor:
            return ((x.float() / 255.0 - mean) / std).contiguous(memory_format=memory_format)

        autocast, scaler, amp_dtype = _amp(dev, self.amp)
        generator = torch.Generator().manual_seed(seed)     # minibatch order and augmentation
        with _seeded(seed, dev):
            model = CifarResNet(make_activation, depth=self.depth).to(dev, memory_format=memory_format)
            optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                                        nesterov=True, weight_decay=self.weight_decay)
            steps_per_epoch = math.ceil(len(x_tr) / self.batch_size)
            schedule = _cosine_schedule(optimizer, self.epochs * steps_per_epoch)
            epoch_loss, epochs_done, diverged = float("nan"), 0, False
            for epoch in range(self.epochs):
                model.train()
                order = torch.randperm(len(x_tr), generator=generator).to(dev)
                total = torch.zeros((), device=dev)
                for start in range(0, len(order), self.batch_size):
                    idx = order[start:start + self.batch_size]
                    xb = x_tr[idx]
                    if self.augment:
                        xb = cifar_augment(xb, generator)
                    with autocast():
                        loss = F.cross_entropy(model(prepare(xb)), y_tr[idx])
                    _backward_step(loss, optimizer, scaler)
                    schedule.step()
                    total += loss.detach().float() * len(idx)
                # One host sync per epoch, not per step.
                epoch_loss = float(total) / len(x_tr)
                epochs_done += 1
                _log(self.verbose, f"cifar10 epoch {epoch + 1}/{self.epochs} loss {epoch_loss:.4f} "
                                   f"({time.perf_counter() - started:.0f} s)")
                if not math.isfinite(epoch_loss):
                    diverged = True
                    break
            accuracy = _accuracy(model, x_te, y_te, 1000, prepare, autocast)
        return BenchmarkScore(accuracy, self.metric, {
            "train_loss": epoch_loss if math.isfinite(epoch_loss) else None,
            "diverged": diverged, "epochs": epochs_done, "depth": self.depth,
            "n_train": len(x_tr), "n_test": len(x_te), "precision": amp_dtype,
            "seconds": round(time.perf_counter() - started, 3),
        })


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
        "per class (<wnid>/*.JPEG), e.g. with the standard valprep.sh for the validation images.")


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

    def __init__(self, root: Path, train: bool, image_size: int = 224, seed: int = 0,
                 classes: Sequence[str] | None = None):
        root = Path(root)
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.classes = list(classes) if classes is not None else found
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(found) - set(index))
        if unknown:
            raise ValueError(f"{root} has class folders that the training set lacks: {unknown[:5]}")
        # Paths as str: a list of 1.28M str is cheaper to copy into loader workers than Paths.
        self.samples: list[tuple[str, int]] = [
            (str(p), index[c]) for c in found for p in sorted((root / c).iterdir())
            if p.suffix.lower() in _IMAGE_SUFFIXES]
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
            img = img.convert("RGB")        # ImageNet has some greyscale and CMYK JPEGs
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            img = random_resized_crop(img, self.image_size, rng)
            if rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            img = center_crop(img, self.image_size)
        pixels = np.asarray(img, dtype=np.uint8)
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1), label


def random_resized_crop(img: Any, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Any:
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


# -- ImageNet: ResNet-50 ------------------------------------------------------------------------


class _Bottleneck(nn.Module):
    """1x1 reduce → 3x3 → 1x1 expand (x4), BatchNorm after each conv, the activation after the
    first two convs and after the sum; a 1x1 projection shortcut where the shape changes."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, make_activation: ActivationFactory):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation()
        # The stride sits on the 3x3 conv ("ResNet v1.5", as torchvision): about +0.5% top-1
        # over the paper's stride on the first 1x1, same parameters.
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation()
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act3 = make_activation()
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act3(out + self.shortcut(x))


class ResNet(nn.Module):
    """The ImageNet ResNets with bottleneck blocks of He et al. 2016, "Deep Residual Learning for
    Image Recognition", Table 1 (arXiv:1512.03385): a 7x7/2 conv and 3x3/2 max-pool stem, four
    stages of bottleneck blocks with ``width``, 2, 4, 8 x ``width`` inner channels, global average
    pooling and a linear classifier.  ``layers=(3, 4, 6, 3)``, ``width=64``: ResNet-50, 25,557,032
    parameters for 1000 classes; (3, 4, 23, 3) is ResNet-101.  Smaller ``layers``/``width`` give
    the tiny networks of the tests.

    Every nonlinearity (the stem's and three per block) is a fresh ``make_activation()``.  With
    ``zero_init_residual`` the last BatchNorm of each block starts at zero, so each block starts
    as the identity (Goyal et al. 2017), which helps large-batch training.
    """

    def __init__(self, make_activation: ActivationFactory, layers: Sequence[int] = (3, 4, 6, 3),
                 width: int = 64, num_classes: int = 1000, zero_init_residual: bool = True):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), make_activation(),
            nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        cin = width
        for stage, n in enumerate(layers):
            planes = width * 2 ** stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_Bottleneck(cin, planes, stride, make_activation))
                cin = planes * _Bottleneck.expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        _init_resnet(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, _Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet50(make_activation: ActivationFactory, num_classes: int = 1000) -> ResNet:
    """ResNet-50 (He et al. 2016, Table 1)."""
    return ResNet(make_activation, layers=(3, 4, 6, 3), width=64, num_classes=num_classes)


# -- ImageNet: distributed training -------------------------------------------------------------


def _launched_distributed() -> bool:
    """True under ``torchrun`` (it sets RANK and WORLD_SIZE for every process)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 or "RANK" in os.environ


@contextlib.contextmanager
def _process_group(device: torch.device) -> Iterator[tuple[int, int, torch.device]]:
    """(rank, world size, this process's device); sets up torch.distributed when launched by
    torchrun (NCCL on CUDA, gloo on CPU, addresses from the environment) and tears down what it
    set up.  A process group the caller already initialised is used as it is."""
    import torch.distributed as dist

    already = dist.is_available() and dist.is_initialized()
    if not already and not _launched_distributed():
        yield 0, 1, device
        return
    if device.type == "cuda":
        # One GPU per process: torchrun's LOCAL_RANK says which.
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not already:
        if device.type == "cuda":
            # device_id binds the NCCL communicator to this process's GPU up front.
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
    try:
        yield dist.get_rank(), dist.get_world_size(), device
    finally:
        if not already:
            dist.destroy_process_group()


def _all_reduce_sum(values: list[float], device: torch.device, world_size: int) -> list[float]:
    if world_size == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _fixed_subset(n: int, limit: int | None) -> list[int]:
    """The first ``limit`` indices of a fixed permutation (not of the class-sorted list, which
    would hold only the first classes)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(np.random.default_rng(0).permutation(n)[:limit].tolist())


@register_benchmark
class ImageNet:
    """ILSVRC2012 with a ResNet-50 (He et al. 2016): top-1 accuracy on the validation set.

    Recipe: RandomResizedCrop 224 + flip for training, resize 256 + centre crop 224 for
    evaluation; SGD momentum 0.9, weight decay 1e-4, learning rate 0.1 per 256 images of the
    global batch (Goyal et al. 2017) with linear warm-up and cosine decay, label smoothing 0.1;
    mixed precision on CUDA.  For reference, torchvision's 90-epoch recipe (step decay, no label
    smoothing) gives ReLU 76.1% top-1.

    Under ``torchrun`` each process takes one GPU (``LOCAL_RANK``), the model is wrapped in
    DistributedDataParallel, the training set is split by a DistributedSampler, every process
    evaluates its share of the validation set and the counts are all-reduced, so every rank
    returns the same score.

    Options: ``epochs`` (90), ``batch_size`` (per process, 128), ``lr`` (None: 0.1 x global
    batch / 256), ``momentum``, ``weight_decay``, ``label_smoothing``, ``warmup_epochs`` (5),
    ``layers`` ((3, 4, 6, 3)), ``width`` (64), ``image_size`` (224), ``workers`` (loader
    processes per rank), ``limit_train``/``limit_test`` (a fixed random subset of N images; None =
    all), ``amp``, ``checkpoint_dir`` (save after every epoch, resume from it: one directory per
    activation and seed), ``verbose``.
    """

    name = "imagenet"
    metric = "top1"

    def __init__(self, *, epochs: int = 90, batch_size: int = 128, lr: float | None = None,
                 momentum: float = 0.9, weight_decay: float = 1e-4, label_smoothing: float = 0.1,
                 warmup_epochs: int = 5, layers: Sequence[int] = (3, 4, 6, 3), width: int = 64,
                 image_size: int = 224, workers: int = 8, limit_train: int | None = None,
                 limit_test: int | None = None, amp: bool = True,
                 checkpoint_dir: str | Path | None = None, verbose: bool = False):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.warmup_epochs = warmup_epochs
        self.layers = tuple(layers)
        self.width = width
        self.image_size = image_size
        self.workers = workers
        self.limit_train = limit_train
        self.limit_test = limit_test
        self.amp = amp
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose

    def check_data(self, data_dir: Path) -> None:
        _find_imagenet_root(Path(data_dir))
        if importlib.util.find_spec("PIL") is None:
            raise DatasetMissing("the imagenet benchmark decodes JPEGs with Pillow, which is not "
                                 "installed: pip install pillow")

    def _config_key(self, seed: int, world_size: int, num_classes: int) -> str:
        config = {k: v for k, v in vars(self).items()
                  if k not in ("workers", "checkpoint_dir", "verbose")}
        config.update(seed=seed, world_size=world_size, num_classes=num_classes)
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path,
            device: str) -> BenchmarkScore:
        self.check_data(Path(data_dir))
        root = _find_imagenet_root(Path(data_dir))
        with _process_group(_resolve_device(device)) as (rank, world_size, dev):
            return self._run(make_activation, seed, root, dev, rank, world_size)

    def _run(self, make_activation: ActivationFactory, seed: int, root: Path, dev: torch.device,
             rank: int, world_size: int) -> BenchmarkScore:
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data import DataLoader, Subset
        from torch.utils.data.distributed import DistributedSampler

        started = time.perf_counter()
        train_set = ImageFolder(root / "train", train=True, image_size=self.image_size, seed=seed)
        val_set = ImageFolder(root / "val", train=False, image_size=self.image_size,
                              classes=train_set.classes)
        num_classes = len(train_set.classes)
        train_data = Subset(train_set, _fixed_subset(len(train_set), self.limit_train))
        val_indices = _fixed_subset(len(val_set), self.limit_test)
        # Evaluation shards without padding (DistributedSampler would repeat images to even out
        # the shards and bias the accuracy); the counts are summed across ranks afterwards.
        val_data = Subset(val_set, val_indices[rank::world_size])
        # Also used with one process: it shuffles by (seed, epoch), the same in every setting.
        sampler = DistributedSampler(train_data, num_replicas=world_size, rank=rank, shuffle=True,
                                     seed=seed)
        cuda = dev.type == "cuda"
        loader_options = dict(num_workers=self.workers, pin_memory=cuda,
                              persistent_workers=False)
        # drop_last: equal step counts on every rank, and no batch of one for BatchNorm.
        train_loader = DataLoader(train_data, batch_size=self.batch_size, sampler=sampler,
                                  drop_last=len(sampler) >= self.batch_size, **loader_options)
        val_loader = DataLoader(val_data, batch_size=self.batch_size, shuffle=False,
                                **loader_options)

        mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 3, 1, 1) * 255
        std = torch.tensor(IMAGENET_STD, device=dev).view(1, 3, 1, 1) * 255
        memory_format = torch.channels_last if cuda else torch.contiguous_format

        def prepare(x: Tensor) -> Tensor:
            x = x.to(dev, non_blocking=True).float()
            return ((x - mean) / std).contiguous(memory_format=memory_format)

        autocast, scaler, amp_dtype = _amp(dev, self.amp)
        lr = self.lr if self.lr is not None else 0.1 * self.batch_size * world_size / 256
        with _seeded(seed, dev):    # the same initial weights on every rank
            net = ResNet(make_activation, layers=self.layers, width=self.width,
                         num_classes=num_classes).to(dev, memory_format=memory_format)
        model: nn.Module = net
        if world_size > 1:
            model = DistributedDataParallel(net, device_ids=[dev.index] if cuda else None)
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=self.momentum,
                                    weight_decay=self.weight_decay)
        steps_per_epoch = max(1, len(train_loader))
        schedule = _cosine_schedule(optimizer, self.epochs * steps_per_epoch,
                                    self.warmup_epochs * steps_per_epoch)

        checkpoint = None
        key = self._config_key(seed, world_size, num_classes)
        if self.checkpoint_dir is not None:
            checkpoint = Path(self.checkpoint_dir) / "imagenet-checkpoint.pt"
        start_epoch, epoch_loss, diverged = 0, float("nan"), False
        if checkpoint is not None and checkpoint.is_file():
            state = torch.load(checkpoint, map_location=dev, weights_only=True)
            if state["config"] != key:
                raise ValueError(f"{checkpoint} belongs to a run with other settings; use another "
                                 "checkpoint_dir (one per activation, seed and configuration)")
            net.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            start_epoch, epoch_loss = state["epoch"], state["train_loss"]
            _log(self.verbose and rank == 0, f"imagenet: resumed from {checkpoint} after epoch {start_epoch}")

        for epoch in range(start_epoch, self.epochs):
            model.train()
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            total = torch.zeros((), device=dev)
            seen = 0
            for images, labels in train_loader:
                labels = labels.to(dev, non_blocking=True)
                with autocast():
                    loss = F.cross_entropy(model(prepare(images)), labels,
                                           label_smoothing=self.label_smoothing)
                _backward_step(loss, optimizer, scaler)
                schedule.step()
                total += loss.detach().float() * len(labels)
                seen += len(labels)
            loss_sum, count = _all_reduce_sum([float(total), float(seen)], dev, world_size)
            epoch_loss = loss_sum / max(1.0, count)
            _log(self.verbose and rank == 0,
                 f"imagenet epoch {epoch + 1}/{self.epochs} loss {epoch_loss:.4f} "
                 f"lr {schedule.get_last_lr()[0]:.4f} ({time.perf_counter() - started:.0f} s)")
            if not math.isfinite(epoch_loss):   # the same value on every rank: all stop together
                diverged = True
                break
            if checkpoint is not None and rank == 0:
                checkpoint.parent.mkdir(parents=True, exist_ok=True)
                buffer = io.BytesIO()
                torch.save({"config": key, "epoch": epoch + 1, "train_loss": epoch_loss,
                            "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                            "schedule": schedule.state_dict(),
                            "scaler": scaler.state_dict() if scaler is not None else None}, buffer)
                partial = checkpoint.with_suffix(".tmp")
                partial.write_bytes(buffer.getvalue())
                partial.replace(checkpoint)     # atomic: a crash mid-write keeps the last one

        # Evaluate the unwrapped network: DDP's forward may run collectives, and the shards can
        # differ in length by one batch.
        net.eval()
        top1 = top5 = 0
        with torch.no_grad():
            for images, labels in val_loader:
                labels = labels.to(dev, non_blocking=True)
                with autocast():
                    logits = net(prepare(images))
                best = logits.float().topk(min(5, num_classes), dim=1).indices
                top1 += int((best[:, 0] == labels).sum())
                top5 += int((best == labels[:, None]).any(1).sum())
        top1, top5, n_val = _all_reduce_sum([top1, top5, len(val_data)], dev, world_size)
        return BenchmarkScore(top1 / max(1.0, n_val), self.metric, {
            "top5": top5 / max(1.0, n_val),
            "train_loss": epoch_loss if math.isfinite(epoch_loss) else None,
            "diverged": diverged, "epochs": self.epochs, "n_train": len(train_data),
            "n_val": int(n_val), "num_classes": num_classes, "world_size": world_size,
            "global_batch": self.batch_size * world_size, "lr": lr, "layers": list(self.layers),
            "width": self.width, "image_size": self.image_size, "precision": amp_dtype,
            "seconds": round(time.perf_counter() - started, 3),
        })


# -- command line: full ImageNet training under torchrun ----------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``[torchrun --nproc_per_node=N] python -m actmine.transfer.vision --activation NAME
    --data-dir D``: train and evaluate one ResNet-50; rank 0 prints the result as one JSON line."""
    parser = argparse.ArgumentParser(
        prog="python -m actmine.transfer.vision",
        description="Train a ResNet-50 on ImageNet with the given activation (run it under "
                    "torchrun for several GPUs) and print the top-1 accuracy as JSON.")
    parser.add_argument("--activation", default="relu",
                        help="a registry name, or path/to/pack.py:name (default: relu)")
    parser.add_argument("--data-dir", required=True, type=Path,
                        help="folder with imagenet/train and imagenet/val (or train/ and val/)")
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=128, help="per process (default: 128)")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: 0.1 x global batch / 256)")
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--layers", type=lambda s: tuple(int(v) for v in s.split(",")),
                        default=(3, 4, 6, 3), help="blocks per stage (default: 3,4,6,3)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=8, help="loader processes per rank")
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--no-amp", action="store_true", help="train in fp32 on CUDA too")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="save every epoch and resume from here (one per activation and seed)")
    args = parser.parse_args(argv)

    import actmine.activations as activations

    try:
        activations.get(args.activation)        # fail before any process group or data scan
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bench = ImageNet(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                     warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay,
                     label_smoothing=args.label_smoothing, layers=args.layers, width=args.width,
                     image_size=args.image_size, workers=args.workers,
                     limit_train=args.limit_train, limit_test=args.limit_test,
                     amp=not args.no_amp, checkpoint_dir=args.checkpoint_dir, verbose=True)
    try:
        bench.check_data(args.data_dir)
    except DatasetMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = bench.run(lambda: activations.get(args.activation), seed=args.seed,
                       data_dir=args.data_dir, device=device)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"benchmark": bench.name, "activation": args.activation,
                          "seed": args.seed, "metric": result.metric, "top1": result.score,
                          "details": result.details}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
