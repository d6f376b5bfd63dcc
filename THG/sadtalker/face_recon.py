"""The 3DMM coefficient regressor of Deep3DFaceRecon (``ReconNetWrapper('resnet50', use_last_fc=False)``).

The ResNet-50 is written out here because torchvision does not load against the CPU torch build;
the layout and names are torchvision's (``backbone.layer1.0.conv1`` ...)."""

from __future__ import annotations

import torch
from torch import nn

# the 257 outputs, in order: identity 80, expression 64, texture 80, angles 3, lighting 27, translation 2 + 1
HEADS = (80, 64, 80, 3, 27, 2, 1)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50(nn.Module):
    def __init__(self, layers=(3, 4, 6, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        cin = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if i == 0 else 2
            seq = []
            for j in range(blocks):
                seq.append(Bottleneck(cin, planes, stride if j == 0 else 1))
                cin = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*seq))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class ReconNetWrapper(nn.Module):
    """(B, 3, 224, 224) RGB in [0, 1], aligned by ``face.align_for_recon`` -> (B, 257) coefficients."""

    def __init__(self):
        super().__init__()
        self.backbone = ResNet50()
        self.final_layers = nn.ModuleList(nn.Conv2d(2048, n, 1, bias=True) for n in HEADS)

    def forward(self, x):
        feat = self.backbone(x)
        return torch.flatten(torch.cat([layer(feat) for layer in self.final_layers], dim=1), 1)


def split_coeffs(coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The named parts of the 257 coefficients."""
    names = ("id", "exp", "tex", "angle", "gamma", "trans")
    sizes = HEADS[:5] + (3,)
    return dict(zip(names, torch.split(coeffs, sizes, dim=1), strict=True))
