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

This module holds the three benchmarks (their recipes) and the command line's entry point; the data
readers and transforms are in ``vision_data``, the networks in ``vision_models`` (their public names
re-exported here), the shared training helpers in ``training``, the torchrun set-up in ``distributed``,
the option-free parts of an ImageNet run in ``imagenet_training`` and the command line in ``imagenet_cli``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ActivationFactory, BenchmarkScore, DatasetMissing, register_benchmark
from .distributed import _all_reduce_sum, _process_group
from .imagenet_cli import run_command_line
from .imagenet_training import (
    _ImageNetData,
    _ImageNetTraining,
    _imagenet_input,
    _load_checkpoint,
    _save_checkpoint,
    _top1_top5,
)
from .training import _accuracy, _amp, _backward_step, _cosine_schedule, _log, _resolve_device, _seeded
from .vision_data import (
    CIFAR10_MEAN as CIFAR10_MEAN,
    CIFAR10_STD as CIFAR10_STD,
    CIFAR10_URL as CIFAR10_URL,
    IMAGENET_MEAN as IMAGENET_MEAN,
    IMAGENET_STD as IMAGENET_STD,
    IMAGENET_URL as IMAGENET_URL,
    ImageFolder as ImageFolder,
    _digits_split,
    _find_cifar_dir,
    _find_imagenet_root,
    _fixed_subset,
    center_crop as center_crop,
    cifar_augment as cifar_augment,
    load_cifar10 as load_cifar10,
    random_resized_crop as random_resized_crop,
)
from .vision_models import (
    CifarResNet as CifarResNet,
    DigitsCNN as DigitsCNN,
    ResNet as ResNet,
    resnet20 as resnet20,
    resnet50 as resnet50,
)

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


# -- digits: the quick check --------------------------------------------------------------------


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

    def __init__(
        self,
        *,
        epochs: int = 12,
        batch_size: int = 32,
        lr: float = 3e-3,
        width: int = 16,
        test_size: int = 450,
        split_seed: int = 0,
    ):
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
                "pip install scikit-learn"
            ) from err
        try:
            load_digits()
        except OSError as err:  # a damaged installation without its data files
            raise DatasetMissing(
                f"scikit-learn is installed but its bundled digits data could not be read ({err}); "
                "reinstall it: pip install --force-reinstall scikit-learn"
            ) from err

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path, device: str) -> BenchmarkScore:
        self.check_data(data_dir)  # data_dir itself is not used: the data ship with sklearn
        dev = _resolve_device(device)
        started = time.perf_counter()
        x_tr, y_tr, x_te, y_te = (torch.from_numpy(a).to(dev) for a in _digits_split(self.test_size, self.split_seed))
        generator = torch.Generator().manual_seed(seed)  # the minibatch order
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
                    idx = order[start : start + self.batch_size]
                    loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
                    _backward_step(loss, optimizer, None)
                    schedule.step()
                    total += loss.detach() * len(idx)
                epoch_loss = float(total) / len(x_tr)
                epochs_done += 1
                if not math.isfinite(epoch_loss):  # nothing more to learn from a NaN network
                    diverged = True
                    break
            accuracy = _accuracy(model, x_te, y_te, 512, lambda x: x, contextlib.nullcontext)
        return BenchmarkScore(
            accuracy,
            self.metric,
            {
                "train_loss": epoch_loss if math.isfinite(epoch_loss) else None,
                "diverged": diverged,
                "epochs": epochs_done,
                "n_train": len(x_tr),
                "n_test": len(x_te),
                "seconds": round(time.perf_counter() - started, 3),
            },
        )


# -- CIFAR-10: ResNet-20 ------------------------------------------------------------------------


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

    def __init__(
        self,
        *,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        depth: int = 20,
        limit_train: int | None = None,
        limit_test: int | None = None,
        augment: bool = True,
        amp: bool = True,
        verbose: bool = False,
    ):
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

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path, device: str) -> BenchmarkScore:
        dev = _resolve_device(device)
        started = time.perf_counter()
        x_tr, y_tr, x_te, y_te = load_cifar10(Path(data_dir))
        # The batches are already in random order, so the first N images are a fair subset.
        x_tr, y_tr = x_tr[: self.limit_train], y_tr[: self.limit_train]
        x_te, y_te = x_te[: self.limit_test], y_te[: self.limit_test]
        # All of CIFAR-10 fits in GPU memory as uint8 (180 MB): no loader, augmentation on batches.
        x_tr, y_tr, x_te, y_te = (torch.from_numpy(a).to(dev) for a in (x_tr, y_tr, x_te, y_te))
        mean = torch.tensor(CIFAR10_MEAN, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD, device=dev).view(1, 3, 1, 1)
        memory_format = torch.channels_last if dev.type == "cuda" else torch.contiguous_format

        def prepare(x: Tensor) -> Tensor:
            return ((x.float() / 255.0 - mean) / std).contiguous(memory_format=memory_format)

        autocast, scaler, amp_dtype = _amp(dev, self.amp)
        generator = torch.Generator().manual_seed(seed)  # minibatch order and augmentation
        with _seeded(seed, dev):
            model = CifarResNet(make_activation, depth=self.depth).to(dev, memory_format=memory_format)
            optimizer = torch.optim.SGD(
                model.parameters(), lr=self.lr, momentum=self.momentum, nesterov=True, weight_decay=self.weight_decay
            )
            steps_per_epoch = math.ceil(len(x_tr) / self.batch_size)
            schedule = _cosine_schedule(optimizer, self.epochs * steps_per_epoch)
            epoch_loss, epochs_done, diverged = float("nan"), 0, False
            for epoch in range(self.epochs):
                model.train()
                order = torch.randperm(len(x_tr), generator=generator).to(dev)
                total = torch.zeros((), device=dev)
                for start in range(0, len(order), self.batch_size):
                    idx = order[start : start + self.batch_size]
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
                _log(
                    self.verbose,
                    f"cifar10 epoch {epoch + 1}/{self.epochs} loss {epoch_loss:.4f} "
                    f"({time.perf_counter() - started:.0f} s)",
                )
                if not math.isfinite(epoch_loss):
                    diverged = True
                    break
            accuracy = _accuracy(model, x_te, y_te, 1000, prepare, autocast)
        return BenchmarkScore(
            accuracy,
            self.metric,
            {
                "train_loss": epoch_loss if math.isfinite(epoch_loss) else None,
                "diverged": diverged,
                "epochs": epochs_done,
                "depth": self.depth,
                "n_train": len(x_tr),
                "n_test": len(x_te),
                "precision": amp_dtype,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )


# -- ImageNet: ResNet-50 training, data-parallel under torchrun ---------------------------------


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

    def __init__(
        self,
        *,
        epochs: int = 90,
        batch_size: int = 128,
        lr: float | None = None,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.1,
        warmup_epochs: int = 5,
        layers: Sequence[int] = (3, 4, 6, 3),
        width: int = 64,
        image_size: int = 224,
        workers: int = 8,
        limit_train: int | None = None,
        limit_test: int | None = None,
        amp: bool = True,
        checkpoint_dir: str | Path | None = None,
        verbose: bool = False,
    ):
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
            raise DatasetMissing(
                "the imagenet benchmark decodes JPEGs with Pillow, which is not installed: pip install pillow"
            )

    def _config_key(self, seed: int, world_size: int, num_classes: int) -> str:
        config = {k: v for k, v in vars(self).items() if k not in ("workers", "checkpoint_dir", "verbose")}
        config.update(seed=seed, world_size=world_size, num_classes=num_classes)
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()

    def run(self, make_activation: ActivationFactory, seed: int, data_dir: Path, device: str) -> BenchmarkScore:
        self.check_data(Path(data_dir))
        root = _find_imagenet_root(Path(data_dir))
        with _process_group(_resolve_device(device)) as (rank, world_size, dev):
            return self._run(make_activation, seed, root, dev, rank, world_size)

    def _run(
        self, make_activation: ActivationFactory, seed: int, root: Path, dev: torch.device, rank: int, world_size: int
    ) -> BenchmarkScore:
        started = time.perf_counter()
        data = self._data(root, seed, rank, world_size, dev.type == "cuda")
        memory_format = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
        prepare = _imagenet_input(dev, memory_format)
        autocast, scaler, amp_dtype = _amp(dev, self.amp)
        lr = self.lr if self.lr is not None else 0.1 * self.batch_size * world_size / 256
        net, model = self._network(make_activation, seed, dev, world_size, data.num_classes, memory_format)
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=self.momentum, weight_decay=self.weight_decay)
        steps_per_epoch = max(1, len(data.train_loader))
        schedule = _cosine_schedule(optimizer, self.epochs * steps_per_epoch, self.warmup_epochs * steps_per_epoch)
        training = _ImageNetTraining(net, model, optimizer, schedule, scaler, autocast, prepare)

        checkpoint = None
        key = self._config_key(seed, world_size, data.num_classes)
        if self.checkpoint_dir is not None:
            checkpoint = Path(self.checkpoint_dir) / "imagenet-checkpoint.pt"
        start_epoch, epoch_loss = 0, float("nan")
        if checkpoint is not None and checkpoint.is_file():
            start_epoch, epoch_loss = _load_checkpoint(checkpoint, key, dev, training)
            _log(self.verbose and rank == 0, f"imagenet: resumed from {checkpoint} after epoch {start_epoch}")
        epoch_loss, diverged = self._train(
            training, data, start_epoch, epoch_loss, checkpoint, key, dev, rank, world_size, started
        )
        top1, top5, n_val = _all_reduce_sum([*_top1_top5(training, data, dev), len(data.val_data)], dev, world_size)
        return BenchmarkScore(
            top1 / max(1.0, n_val),
            self.metric,
            {
                "top5": top5 / max(1.0, n_val),
                "train_loss": epoch_loss if math.isfinite(epoch_loss) else None,
                "diverged": diverged,
                "epochs": self.epochs,
                "n_train": len(data.train_data),
                "n_val": int(n_val),
                "num_classes": data.num_classes,
                "world_size": world_size,
                "global_batch": self.batch_size * world_size,
                "lr": lr,
                "layers": list(self.layers),
                "width": self.width,
                "image_size": self.image_size,
                "precision": amp_dtype,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    def _data(self, root: Path, seed: int, rank: int, world_size: int, cuda: bool) -> _ImageNetData:
        """The training set (this rank's share, shuffled by (seed, epoch)) and this rank's shard
        of the validation set, with their loaders."""
        from torch.utils.data import DataLoader, Subset
        from torch.utils.data.distributed import DistributedSampler

        train_set = ImageFolder(root / "train", train=True, image_size=self.image_size, seed=seed)
        val_set = ImageFolder(root / "val", train=False, image_size=self.image_size, classes=train_set.classes)
        train_data = Subset(train_set, _fixed_subset(len(train_set), self.limit_train))
        val_indices = _fixed_subset(len(val_set), self.limit_test)
        # Evaluation shards without padding (DistributedSampler would repeat images to even out
        # the shards and bias the accuracy); the counts are summed across ranks afterwards.
        val_data = Subset(val_set, val_indices[rank::world_size])
        # Also used with one process: it shuffles by (seed, epoch), the same in every setting.
        sampler = DistributedSampler(train_data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        loader_options = dict(num_workers=self.workers, pin_memory=cuda, persistent_workers=False)
        # drop_last: equal step counts on every rank, and no batch of one for BatchNorm.
        train_loader = DataLoader(
            train_data,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=len(sampler) >= self.batch_size,
            **loader_options,
        )
        val_loader = DataLoader(val_data, batch_size=self.batch_size, shuffle=False, **loader_options)
        return _ImageNetData(train_set, train_data, val_data, sampler, train_loader, val_loader)

    def _network(
        self,
        make_activation: ActivationFactory,
        seed: int,
        dev: torch.device,
        world_size: int,
        num_classes: int,
        memory_format: torch.memory_format,
    ) -> tuple[nn.Module, nn.Module]:
        """The ResNet, and the module that trains it: DistributedDataParallel around it when
        there are several processes, else the network itself."""
        from torch.nn.parallel import DistributedDataParallel

        with _seeded(seed, dev):  # the same initial weights on every rank
            net = ResNet(make_activation, layers=self.layers, width=self.width, num_classes=num_classes).to(
                dev, memory_format=memory_format
            )
        model: nn.Module = net
        if world_size > 1:
            model = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
        return net, model

    def _train(
        self,
        training: _ImageNetTraining,
        data: _ImageNetData,
        start_epoch: int,
        epoch_loss: float,
        checkpoint: Path | None,
        key: str,
        dev: torch.device,
        rank: int,
        world_size: int,
        started: float,
    ) -> tuple[float, bool]:
        """The epochs from ``start_epoch`` on, each followed by a checkpoint (rank 0); stops at a
        non-finite loss. The last epoch's loss and whether training diverged."""
        diverged = False
        for epoch in range(start_epoch, self.epochs):
            epoch_loss = self._train_epoch(training, data, epoch, dev, world_size)
            _log(
                self.verbose and rank == 0,
                f"imagenet epoch {epoch + 1}/{self.epochs} loss {epoch_loss:.4f} "
                f"lr {training.schedule.get_last_lr()[0]:.4f} ({time.perf_counter() - started:.0f} s)",
            )
            if not math.isfinite(epoch_loss):  # the same value on every rank: all stop together
                diverged = True
                break
            if checkpoint is not None and rank == 0:
                _save_checkpoint(checkpoint, key, epoch + 1, epoch_loss, training)
        return epoch_loss, diverged

    def _train_epoch(
        self, training: _ImageNetTraining, data: _ImageNetData, epoch: int, dev: torch.device, world_size: int
    ) -> float:
        """One epoch over this rank's share; the mean training loss over all ranks."""
        training.model.train()
        data.sampler.set_epoch(epoch)
        data.train_set.set_epoch(epoch)
        total = torch.zeros((), device=dev)
        seen = 0
        for images, labels in data.train_loader:
            labels = labels.to(dev, non_blocking=True)
            with training.autocast():
                loss = F.cross_entropy(
                    training.model(training.prepare(images)), labels, label_smoothing=self.label_smoothing
                )
            _backward_step(loss, training.optimizer, training.scaler)
            training.schedule.step()
            total += loss.detach().float() * len(labels)
            seen += len(labels)
        loss_sum, count = _all_reduce_sum([float(total), float(seen)], dev, world_size)
        return loss_sum / max(1.0, count)


# -- command line: ImageNet under torchrun (parser and driver in ``imagenet_cli``) --------------


def main(argv: Sequence[str] | None = None) -> int:
    """``[torchrun --nproc_per_node=N] python -m actmine.transfer.vision --activation NAME
    --data-dir D``: train and evaluate one ResNet-50; rank 0 prints the result as one JSON line."""
    return run_command_line(ImageNet, argv)


if __name__ == "__main__":
    sys.exit(main())
