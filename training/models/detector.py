"""CenterNet-style coarse detector: light depthwise-separable backbone, one stride-4 head.

Tiny defects (2–10 px in the coarse frame) live or die by resolution, so the head sits at stride
4 and gets a top-down path from stride 8 and 16 for context (a machining mark is long, a scratch
is thin; telling them apart needs more than a 3×3 window). Fully convolutional: trained on crops,
run on the whole frame. Outputs:

- ``heatmap`` (N, C, H/4, W/4): sigmoid object-centre score per defect class;
- ``size``    (N, 2, H/4, W/4): log(box width px), log(box height px);
- ``offset``  (N, 2, H/4, W/4): centre position inside its cell, in cells (0..1).
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

STRIDE = 4
PAD_MULTIPLE = 32


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SeparableBlock(nn.Module):
    """Depthwise 3×3 + pointwise 1×1, residual when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.depthwise = conv_bn(cin, cin, 3, stride, groups=cin, dilation=dilation)
        self.pointwise = conv_bn(cin, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(x))
        return x + y if self.residual else y


class CenterNetDetector(nn.Module):
    def __init__(self, num_classes: int = 4, width: int = 32, in_channels: int = 1):
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.stem = nn.Sequential(conv_bn(in_channels, w // 2, 3, 2), SeparableBlock(w // 2, w // 2))  # /2
        self.stage4 = nn.Sequential(SeparableBlock(w // 2, w, 2), SeparableBlock(w, w))           # /4
        self.stage8 = nn.Sequential(SeparableBlock(w, 2 * w, 2), SeparableBlock(2 * w, 2 * w))    # /8
        self.stage16 = nn.Sequential(SeparableBlock(2 * w, 3 * w, 2), SeparableBlock(3 * w, 3 * w),
                                     SeparableBlock(3 * w, 3 * w, dilation=2))                     # /16
        self.lat8 = conv_bn(2 * w, w, 1)
        self.lat16 = conv_bn(3 * w, w, 1)
        self.fuse8 = SeparableBlock(w, w)
        self.fuse4 = SeparableBlock(w, w)
        self.neck = SeparableBlock(w, w)

        def head(out: int) -> nn.Sequential:
            return nn.Sequential(conv_bn(w, w, 3, groups=w), conv_bn(w, w, 1), nn.Conv2d(w, out, 1))

        self.heatmap = head(num_classes)
        self.size = head(2)
        self.offset = head(2)
        # focal-loss prior: start with background everywhere (CenterNet's -2.19 ≈ p=0.1; rarer here)
        nn.init.constant_(self.heatmap[-1].bias, -math.log((1 - 0.01) / 0.01))
        nn.init.constant_(self.size[-1].bias, math.log(6.0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.stage4(self.stem(x))
        f8 = self.stage8(f4)
        f16 = self.stage16(f8)
        p8 = self.fuse8(self.lat8(f8) + F.interpolate(self.lat16(f16), scale_factor=2.0, mode="nearest"))
        p4 = self.neck(self.fuse4(f4 + F.interpolate(p8, scale_factor=2.0, mode="nearest")))
        return torch.sigmoid(self.heatmap(p4)), self.size(p4), torch.sigmoid(self.offset(p4))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
