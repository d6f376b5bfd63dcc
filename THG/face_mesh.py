"""MediaPipe's 468-point face mesh (its model ships in the ``mediapipe`` wheel), safe to share.

A MediaPipe graph is not thread-safe: two sessions preparing portraits at once on one backend
crashed the process. Every call goes through one lock per detector.

A graph that fails once stays failed ("Graph has errors") for every later image: one empty image
(a 1x1 portrait cropped to even sides) broke the face detector of every visitor until a restart. So
images too small to hold a face never reach it, and a graph that fails anyway is rebuilt before the
next call; the failure is that one image's error.
"""

from __future__ import annotations

import threading

import numpy as np

from app_modules.errors import BadInputError

# no face can be found in fewer pixels than this a side (MediaPipe's detector works at 128x128)
MIN_SIDE = 16


class FaceMesh:
    """Face landmarks of the largest face in an RGB uint8 image, in pixels, or None.

    ``refine_landmarks`` adds the 10 iris points (478 in all: 468-472 and 473-477 are the two irises)."""

    def __init__(self, min_confidence: float = 0.5, refine_landmarks: bool = False):
        self._min_confidence = min_confidence
        self._refine = refine_landmarks
        self._lock = threading.Lock()
        self._mesh = self._build()

    def _build(self):
        import mediapipe as mp

        return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                               refine_landmarks=self._refine,
                                               min_detection_confidence=self._min_confidence)

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """(468, 2) float64 pixel coordinates (x, y), or None when no face is found."""
        found = self._landmarks(rgb)
        if found is None:
            return None
        h, w = np.asarray(rgb).shape[:2]
        return found[:, :2] * (w, h)

    def normalized(self, rgb: np.ndarray) -> np.ndarray | None:
        """(N, 3) float32 (x / width, y / height, z), MediaPipe's own units, or None."""
        found = self._landmarks(rgb)
        return None if found is None else found.astype(np.float32)

    def _landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise BadInputError("the portrait must be an RGB colour image")
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise BadInputError(f"the image is only {w}x{h} pixels, too small for a face: use a larger photo")
        image = np.ascontiguousarray(rgb)
        with self._lock:
            try:
                result = self._mesh.process(image)
            except (RuntimeError, ValueError):
                # maybe an earlier image broke the graph: a fresh one gets one more try
                self._rebuild()
                try:
                    result = self._mesh.process(image)
                except (RuntimeError, ValueError) as e:
                    self._rebuild()
                    raise BadInputError(f"the face detector could not read this image ({str(e)[:120]}); "
                                        "try another photo") from e
        if not result.multi_face_landmarks:
            return None
        return np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64)

    def _rebuild(self) -> None:
        """A fresh graph in place of a failed one (called with the lock held)."""
        try:
            self._mesh.close()
        except Exception:  # noqa: BLE001 - a failed graph may not even close cleanly
            pass
        self._mesh = self._build()

    def close(self) -> None:
        with self._lock:
            self._mesh.close()


def face_width(landmarks: np.ndarray) -> float:
    """The face's width in pixels (the landmarks' horizontal extent)."""
    xs = landmarks[:, 0]
    return float(xs.max() - xs.min())
