"""MediaPipe's 468-point face mesh (its model ships in the ``mediapipe`` wheel), safe to share.

A MediaPipe graph is not thread-safe: two sessions preparing portraits at once on one backend
crashed the process. Every call goes through one lock per detector."""

from __future__ import annotations

import threading

import numpy as np


class FaceMesh:
    """Face landmarks of the largest face in an RGB uint8 image, in pixels, or None.

    ``refine_landmarks`` adds the 10 iris points (478 in all: 468-472 and 473-477 are the two irises)."""

    def __init__(self, min_confidence: float = 0.5, refine_landmarks: bool = False):
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                     refine_landmarks=refine_landmarks,
                                                     min_detection_confidence=min_confidence)
        self._lock = threading.Lock()

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """(468, 2) float64 pixel coordinates (x, y), or None when no face is found."""
        found = self._landmarks(rgb)
        if found is None:
            return None
        h, w = rgb.shape[:2]
        return found[:, :2] * (w, h)

    def normalized(self, rgb: np.ndarray) -> np.ndarray | None:
        """(N, 3) float32 (x / width, y / height, z), MediaPipe's own units, or None."""
        found = self._landmarks(rgb)
        return None if found is None else found.astype(np.float32)

    def _landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        with self._lock:
            result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        return np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)

    def close(self) -> None:
        with self._lock:
            self._mesh.close()
