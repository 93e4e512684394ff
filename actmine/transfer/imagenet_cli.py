"""The command line of a full ImageNet run, alone or under torchrun (``python -m actmine.transfer.vision``):
the argument parser, and the driver that trains and evaluates one ResNet-50 and prints the result as
one JSON line on rank 0.

`vision.main` (the entry point torchrun's ``-m`` names) hands its `ImageNet` benchmark to
`run_command_line`: the class is passed in rather than imported because `vision` imports this
module, and an import back would close a cycle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .base import DatasetMissing


def _parser() -> argparse.ArgumentParser:
    """The options of ``python -m actmine.transfer.vision``: the activation, the data and the
    ImageNet benchmark's recipe."""
    parser = argparse.ArgumentParser(
        prog="python -m actmine.transfer.vision",
        description="Train a ResNet-50 on ImageNet with the given activation (run it under "
        "torchrun for several GPUs) and print the top-1 accuracy as JSON.",
    )
    parser.add_argument("--activation", default="relu", help="a registry name, or path/to/pack.py:name (default: relu)")
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="folder with imagenet/train and imagenet/val (or train/ and val/)"
    )
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=128, help="per process (default: 128)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 0.1 x global batch / 256)")
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument(
        "--layers",
        type=lambda s: tuple(int(v) for v in s.split(",")),
        default=(3, 4, 6, 3),
        help="blocks per stage (default: 3,4,6,3)",
    )
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=8, help="loader processes per rank")
    parser.add_argument("--limit-train", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--no-amp", action="store_true", help="train in fp32 on CUDA too")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="save every epoch and resume from here (one per activation and seed)",
    )
    return parser


def run_command_line(imagenet: Callable[..., Any], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, check the activation and the data (exit status 2 and a message when either
    is wrong), train ``imagenet(...)`` (the `vision.ImageNet` benchmark) and print the result on
    rank 0; 0 on success."""
    args = _parser().parse_args(argv)

    import actmine.activations as activations

    try:
        activations.get(args.activation)  # fail before any process group or data scan
    except (ValueError, TypeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bench = imagenet(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        layers=args.layers,
        width=args.width,
        image_size=args.image_size,
        workers=args.workers,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
        amp=not args.no_amp,
        checkpoint_dir=args.checkpoint_dir,
        verbose=True,
    )
    try:
        bench.check_data(args.data_dir)
    except DatasetMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = bench.run(lambda: activations.get(args.activation), seed=args.seed, data_dir=args.data_dir, device=device)
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            json.dumps(
                {
                    "benchmark": bench.name,
                    "activation": args.activation,
                    "seed": args.seed,
                    "metric": result.metric,
                    "top1": result.score,
                    "details": result.details,
                }
            )
        )
    return 0
