"""The THG stage: a portrait and speech in, video frames out, chunk by chunk."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

from app_modules.types import Audio


class THG(ABC):
    """A talking head. ``prepare`` runs once per portrait (face detection, crops, coefficients);
    ``render`` then runs once per sentence and yields frames as soon as they exist."""

    fps: int = 25

    @abstractmethod
    def prepare(self, image: np.ndarray) -> Any:
        """Analyse an RGB uint8 portrait. Raise ``BadInputError`` when no face is found."""

    @abstractmethod
    def render(self, avatar: Any, audio: Audio) -> Iterator[np.ndarray]:
        """Yield RGB uint8 frames (H, W, 3), all the same size, ``ceil(audio.duration * fps)`` of them."""
