"""Fine ROI classifier: a small CNN on mono crops around one candidate; softmax inside the graph."""
from __future__ import annotations

import torch
from torch import nn

from .detector import SeparableBlock, conv_bn


class RoiClassifier(nn.Module):
    def __init__(self, num_classes: int = 5, width: int = 24):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(1, w, 3, 1),                 # 64
            conv_bn(w, w, 3, 2),                 # 32
            SeparableBlock(w, 2 * w),
            SeparableBlock(2 * w, 2 * w, 2),     # 16
            SeparableBlock(2 * w, 2 * w),
            SeparableBlock(2 * w, 4 * w, 2),     # 8
            SeparableBlock(4 * w, 4 * w),
            SeparableBlock(4 * w, 4 * w, dilation=2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(4 * w, num_classes))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities: what the station consumes (and what the ONNX export outputs)."""
        return torch.softmax(self.logits(x), dim=1)
