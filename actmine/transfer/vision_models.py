"""The image benchmarks' networks, plain PyTorch: the digits CNN, the CIFAR ResNets (ResNet-20)
and the ImageNet ResNets with bottleneck blocks (ResNet-50). Every nonlinearity of each is a fresh
``make_activation()``, so the activation under test is plugged in everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ActivationFactory


# -- digits -------------------------------------------------------------------------------------


class DigitsCNN(nn.Module):
    """A small CNN for 8x8 images: conv(w) → act → conv(2w) → act → pool → fc 64 → act → fc 10.

    Three nonlinearities, each a fresh ``make_activation()``.
    """

    def __init__(self, make_activation: ActivationFactory, width: int = 16, hidden: int = 64, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            make_activation(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            make_activation(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 4 * 4, hidden),
            make_activation(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


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
            x = x[:, :, :: self.stride, :: self.stride]
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

    def __init__(
        self,
        make_activation: ActivationFactory,
        depth: int = 20,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
    ):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 56, 110, ...), got {depth}"
            )
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), make_activation()
        )
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
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

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

    def __init__(
        self,
        make_activation: ActivationFactory,
        layers: Sequence[int] = (3, 4, 6, 3),
        width: int = 64,
        num_classes: int = 1000,
        zero_init_residual: bool = True,
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), make_activation(), nn.MaxPool2d(3, 2, 1)
        )
        blocks: list[nn.Module] = []
        cin = width
        for stage, n in enumerate(layers):
            planes = width * 2**stage
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
