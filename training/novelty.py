"""Novelty score for the fine classifier: how unlike the training data a crop is.

The softmax has no "none of these" answer: a crop unlike every class still gets probabilities that
sum to one, and `ok` is what is left when no defect class is confident. The novelty score gives
`ok` a positive condition instead (Lee et al. 2018, "A simple unified framework for detecting
out-of-distribution samples"): on pooled features, fit one mean per class and one shared
covariance on training crops, and score a crop by its Mahalanobis distance to the nearest class
mean. The features are the penultimate ones plus the pooled maps of the first two stages and the
crop's fine-scale contrast (`RoiClassifier.embed_with_novelty`): on the penultimate features alone
a crop of random noise scored only ~1.2× the limit (the head has learnt to ignore fine texture)
and a flat black crop 0.7× (it looks like the inside of a hole, an `ok` shot in training); with
the early stages noise scores ~6×, and the contrast term lifts a crop without any sensor noise
(black, white) above the limit, while a black crop *with* noise still reads as a hole. The covariance is shrunk towards a scaled identity (Ledoit–Wolf, with a floor) so that
directions the training data barely spans do not blow up.

The fit is baked into the exported graph (output `novelty`, see `models.classifier.WithNovelty`);
the limit is chosen on the validation set and stored in the model's metadata, never in the graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .models.classifier import RoiClassifier, WithNovelty

KEEP = 0.995          # share of known val crops (all classes pooled) at or below the limit
MIN_SHRINKAGE = 0.01  # floor on the Ledoit–Wolf shrinkage: a few dead feature channels stay finite
FIT_DRAWS = 2         # fixed-jitter draws of each training sample for the fit
FIT_SEED = 54321


@dataclass(frozen=True)
class NoveltyFit:
    classes: tuple[int, ...]  # class indices with a fitted mean (a left-out kind has none)
    means: np.ndarray         # (C', D) float64
    origin: np.ndarray        # (D,): mean of the fitted features, subtracted before whitening
    whitening: np.ndarray     # (D, D): Σ⁻¹ = WᵀW
    shrinkage: float
    samples: int

    def centres(self) -> np.ndarray:
        return (self.means - self.origin) @ self.whitening.T

    def score(self, features: np.ndarray) -> np.ndarray:
        """The same distance the graph computes, in float64 (the reference for parity)."""
        z = (np.asarray(features, np.float64) - self.origin) @ self.whitening.T
        d2 = ((z[:, None, :] - self.centres()[None]) ** 2).sum(-1)
        return np.sqrt(d2.min(1))

    def attach(self, model: RoiClassifier) -> WithNovelty:
        return WithNovelty(model, *(torch.from_numpy(a) for a in (self.origin, self.whitening, self.centres()))).eval()


@torch.no_grad()
def embeddings(model: RoiClassifier, inputs: np.ndarray, batch: int = 256) -> np.ndarray:
    """Novelty features (N, D) of normalised float inputs (N, 1, h, w)."""
    if not len(inputs):
        raise ValueError("novelty features need at least one crop, got none")
    model.eval()
    out = [model.embed_with_novelty(torch.from_numpy(inputs[i:i + batch]))[1].numpy() for i in range(0, len(inputs), batch)]
    return np.concatenate(out).astype(np.float64)


def ledoit_wolf(centred: np.ndarray) -> tuple[np.ndarray, float]:
    """Shrunk covariance of centred rows (n, p) and the shrinkage used (Ledoit & Wolf 2004)."""
    n, p = centred.shape
    sample = centred.T @ centred / n
    mu = np.trace(sample) / p
    delta = sample.copy()
    delta[np.diag_indices(p)] -= mu
    d2 = float((delta ** 2).sum())
    norms = (centred ** 2).sum(1)
    b2_bar = float((norms ** 2).sum() - 2 * np.einsum("ij,jk,ik->", centred, sample, centred)
                   + n * (sample ** 2).sum()) / n ** 2
    shrinkage = 1.0 if d2 <= 0 else min(max(b2_bar, 0.0), d2) / d2
    shrinkage = max(shrinkage, MIN_SHRINKAGE)
    covariance = (1 - shrinkage) * sample
    covariance[np.diag_indices(p)] += shrinkage * mu
    return covariance, shrinkage


def fit(features: np.ndarray, labels: np.ndarray) -> NoveltyFit:
    """Per-class means and a tied, shrunk covariance on training features."""
    features = np.asarray(features, np.float64)
    if len(features) < 2:
        raise ValueError(f"novelty fit needs at least 2 training crops, got {len(features)}")
    classes = tuple(int(c) for c in np.unique(labels))
    means = np.stack([features[labels == c].mean(0) for c in classes])
    centred = features - means[np.searchsorted(classes, labels)]
    covariance, shrinkage = ledoit_wolf(centred)
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, values.max() * 1e-9 + 1e-12)
    whitening = (vectors / np.sqrt(values)).T
    return NoveltyFit(classes, means, features.mean(0), whitening, float(shrinkage), int(len(features)))


def choose_limit(scores: np.ndarray, keep: float = KEEP) -> float:
    """The smallest value (4 decimals) with at least `keep` of the scores at or below it."""
    values = np.sort(np.asarray(scores, np.float64))
    if not len(values):
        raise ValueError("novelty limit needs validation crops, got none")
    k = min(max(int(np.ceil(keep * len(values))), 1), len(values))
    return float(np.ceil(values[k - 1] * 1e4) / 1e4)  # rounded up: the crops it keeps stay at or below it


def rule_text(keep: float = KEEP) -> str:
    return (f"novel when novelty > limit; limit = the smallest 4-decimal value with ≥{keep:.3g} of the validation crops of "
            f"known classes (all classes pooled, fixed jitter) at or below it")


def metadata(fit_: NoveltyFit, limit: float, val_scores: np.ndarray, val_labels: np.ndarray, class_names: tuple[str, ...],
             keep: float = KEEP) -> dict[str, Any]:
    """The `novelty` entry of the model's metadata (beside thresholds; read by the runtime)."""
    per_class = {name: [int((val_scores[val_labels == k] > limit).sum()), int((val_labels == k).sum())]
                 for k, name in enumerate(class_names) if (val_labels == k).any()}
    return {"limit": float(limit), "output": "novelty", "rule": rule_text(keep), "keep": keep,
            "distance": "min over classes of the Mahalanobis distance (not squared) of the novelty features; tied, shrunk covariance",
            "features": "pooled penultimate + pooled stages 0 and 1 + log fine-scale contrast of the input",
            "shrinkage": round(fit_.shrinkage, 5), "fitted_classes": [class_names[c] for c in fit_.classes],
            "fit_crops": fit_.samples, "fit_draws": FIT_DRAWS,
            "val_above_limit": per_class}
