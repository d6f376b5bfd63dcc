"""The shared MediaPipe face mesh survives bad images: one visitor's broken picture never breaks the
detector for the next (a failed MediaPipe graph otherwise fails every later call until a restart)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mediapipe")

from app_modules.errors import BadInputError
from THG.face_mesh import FaceMesh, face_width


def test_images_too_small_for_a_face_never_reach_the_graph(portrait):
    mesh = FaceMesh()
    for bad in (np.zeros((0, 0, 3), np.uint8), np.zeros((1, 1, 3), np.uint8), np.zeros((8, 300, 3), np.uint8)):
        with pytest.raises(BadInputError, match="too small for a face"):
            mesh(bad)
    with pytest.raises(BadInputError, match="RGB"):
        mesh(np.zeros((64, 64), np.uint8))
    landmarks = mesh(portrait)
    assert landmarks is not None and landmarks.shape == (468, 2)
    assert 100 < face_width(landmarks) < portrait.shape[1]


def test_a_failed_graph_is_rebuilt_and_the_next_portrait_works(portrait):
    mesh = FaceMesh()
    # break the real graph the way an empty image did before the size guard existed
    with pytest.raises(RuntimeError):
        mesh._mesh.process(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(RuntimeError, match="Graph has errors"):
        mesh._mesh.process(np.ascontiguousarray(portrait))  # broken for good, as in the issue
    assert mesh(portrait) is not None  # rebuilt and retried
    assert mesh(portrait) is not None
