"""Fine ROI classifier: a small CNN on mono crops around one candidate; softmax inside the graph."""
from __future__ import annotations

import torch
from torch import nn

from .detector import SeparableBlock, conv_bn


NOVELTY_STAGES = (0, 1)  # stages (64 and 32 px) whose pooled maps join the novelty features
CONTRAST_EPS = 1e-3      # normalised units (≈0.06 grey levels, far below the camera's noise): keeps the log finite


def fine_contrast(x: torch.Tensor) -> torch.Tensor:
    """log of the mean absolute neighbour difference (x + y) of the input, (N, 1): never below the
    sensor noise for a real crop; far below it for a synthetic flat one."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return torch.log(dx + dy + CONTRAST_EPS)[:, None]


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

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features (N, 4·width): what the linear head reads."""
        return torch.flatten(self.pool(self.features(x)), 1)

    def embed_with_novelty(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled penultimate features, novelty features) in one pass. The novelty features are the
        penultimate ones plus the pooled maps of the first two stages and the crop's fine-scale
        contrast (N, 4w + 2w + 1): the early stages see texture the head has learnt to ignore
        (noise, patterns), the contrast term sees a crop with no sensor noise at all."""
        h, early = x, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in NOVELTY_STAGES:
                early.append(h.mean(dim=(2, 3)))
        final = torch.flatten(self.pool(h), 1)
        return final, torch.cat([final, *early, fine_contrast(x)], dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities: what the station consumes (and what the ONNX export outputs)."""
        return torch.softmax(self.logits(x), dim=1)


class WithNovelty(nn.Module):
    """The exported graph: probabilities plus a novelty score per crop.

    novelty = min over the fitted classes of the Mahalanobis distance of the novelty features
    (`RoiClassifier.embed_with_novelty`) to that class's mean, under one shared (tied, shrunk)
    covariance (Lee et al. 2018, with its feature ensemble over depths). The covariance enters
    as a whitening matrix W (Σ⁻¹ = WᵀW) and the means already whitened, so the graph is a matmul,
    a difference and a square root. No threshold lives here: the limit is metadata.
    """

    def __init__(self, classifier: RoiClassifier, origin: torch.Tensor, whitening: torch.Tensor, centres: torch.Tensor):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("origin", origin.float())        # (D,): mean feature; keeps float32 sums small
        self.register_buffer("whitening", whitening.float())  # (D, D): z = (f - origin) @ Wᵀ
        self.register_buffer("centres", centres.float())      # (C', D): whitened class means

    def novelty(self, features: torch.Tensor) -> torch.Tensor:
        z = (features - self.origin) @ self.whitening.T
        d2 = ((z[:, None, :] - self.centres[None]) ** 2).sum(-1)
        return torch.sqrt(d2.min(dim=1).values)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        final, features = self.classifier.embed_with_novelty(x)
        return torch.softmax(self.classifier.fc(final), dim=1), self.novelty(features)
