"""The parts of the ImageNet benchmark's run (`vision.ImageNet`) that need none of its options:
the run's data and training state as two records, the normalisation of the loader's uint8
batches on the device, the per-epoch checkpoint (saved atomically, refused when it belongs to
other settings) and the top-1/top-5 count on a validation shard.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .vision_data import IMAGENET_MEAN, IMAGENET_STD, ImageFolder


@dataclass
class _ImageNetData:
    """One ImageNet run's data as this rank sees them: the training set (whose epoch sets the
    augmentation), its subset, sampler and loader, and this rank's validation shard and loader."""

    train_set: ImageFolder
    train_data: Any
    val_data: Any
    sampler: Any
    train_loader: Any
    val_loader: Any

    @property
    def num_classes(self) -> int:
        return len(self.train_set.classes)


@dataclass
class _ImageNetTraining:
    """What the epochs of an ImageNet run work with: the network (``net``), the module that trains
    it (``model``: DDP around ``net`` with several processes), the optimiser, the schedule, the
    loss scaler (fp16 only), the precision context and the input preparation."""

    net: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any
    scaler: Any
    autocast: Callable[[], Any]
    prepare: Callable[[Tensor], Tensor]


def _imagenet_input(dev: torch.device, memory_format: torch.memory_format) -> Callable[[Tensor], Tensor]:
    """uint8 batches from the loader → normalised floats on ``dev`` (normalised there, so that
    only uint8 pixels travel through the loader)."""
    mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=dev).view(1, 3, 1, 1) * 255

    def prepare(x: Tensor) -> Tensor:
        x = x.to(dev, non_blocking=True).float()
        return ((x - mean) / std).contiguous(memory_format=memory_format)

    return prepare


def _load_checkpoint(checkpoint: Path, key: str, dev: torch.device, training: _ImageNetTraining) -> tuple[int, float]:
    """Restore the training state saved after an epoch; the epochs done and that epoch's loss.
    A checkpoint of a run with other settings (``key``) is refused."""
    state = torch.load(checkpoint, map_location=dev, weights_only=True)
    if state["config"] != key:
        raise ValueError(
            f"{checkpoint} belongs to a run with other settings; use another "
            "checkpoint_dir (one per activation, seed and configuration)"
        )
    training.net.load_state_dict(state["model"])
    training.optimizer.load_state_dict(state["optimizer"])
    training.schedule.load_state_dict(state["schedule"])
    if training.scaler is not None and state.get("scaler"):
        training.scaler.load_state_dict(state["scaler"])
    return state["epoch"], state["train_loss"]


def _save_checkpoint(
    checkpoint: Path, key: str, epochs_done: int, epoch_loss: float, training: _ImageNetTraining
) -> None:
    """Save the training state after an epoch, atomically."""
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    scaler = training.scaler
    torch.save(
        {
            "config": key,
            "epoch": epochs_done,
            "train_loss": epoch_loss,
            "model": training.net.state_dict(),
            "optimizer": training.optimizer.state_dict(),
            "schedule": training.schedule.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
        },
        buffer,
    )
    partial = checkpoint.with_suffix(".tmp")
    partial.write_bytes(buffer.getvalue())
    partial.replace(checkpoint)  # atomic: a crash mid-write keeps the last one


def _top1_top5(training: _ImageNetTraining, data: _ImageNetData, dev: torch.device) -> tuple[int, int]:
    """Top-1 and top-5 hits on this rank's validation shard."""
    # Evaluate the unwrapped network: DDP's forward may run collectives, and the shards can
    # differ in length by one batch.
    net = training.net
    net.eval()
    top1 = top5 = 0
    with torch.no_grad():
        for images, labels in data.val_loader:
            labels = labels.to(dev, non_blocking=True)
            with training.autocast():
                logits = net(training.prepare(images))
            best = logits.float().topk(min(5, data.num_classes), dim=1).indices
            top1 += int((best[:, 0] == labels).sum())
            top5 += int((best == labels[:, None]).any(1).sum())
    return top1, top5
