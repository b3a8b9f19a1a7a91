"""Image archive: coarse frames and fine shots of NG and ERROR parts, and a sample of PASS parts."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np


class ImageArchive:
    def __init__(self, root: str | Path, pass_sample_every: int = 20):
        self.root = Path(root)
        self.pass_sample_every = pass_sample_every  # 0: keep no PASS images
        self._pass_count = 0

    def wants(self, verdict: str) -> bool:
        if verdict != "PASS":
            return True
        self._pass_count += 1
        return self.pass_sample_every > 0 and (self._pass_count - 1) % self.pass_sample_every == 0

    def save(self, part_id: str, images: dict[str, np.ndarray]) -> list[str]:
        """Write `name → image` as PNGs under root/YYYYMMDD/part_id/; returns the paths."""
        folder = self.root / time.strftime("%Y%m%d") / part_id
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, image in images.items():
            path = folder / f"{name}.png"
            if not cv2.imwrite(str(path), image):
                raise OSError(f"archive: cannot write {path}")
            paths.append(str(path))
        return paths
