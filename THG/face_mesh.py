"""MediaPipe's 468-point face mesh (its model ships in the ``mediapipe`` wheel), safe to share.

A MediaPipe graph is not thread-safe: two sessions preparing portraits at once on one backend
crashed the process. Every call goes through one lock per detector."""

from __future__ import annotations

import threading

import numpy as np


class FaceMesh:
    """Face landmarks of the largest face in an RGB uint8 image, in pixels, or None."""

    def __init__(self, min_confidence: float = 0.5):
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                     refine_landmarks=False,
                                                     min_detection_confidence=min_confidence)
        self._lock = threading.Lock()

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """(468, 2) float64 pixel coordinates (x, y), or None when no face is found."""
        with self._lock:
            result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        return np.array([(p.x * w, p.y * h) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)

    def close(self) -> None:
        with self._lock:
            self._mesh.close()
