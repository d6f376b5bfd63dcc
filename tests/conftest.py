"""Shared test fixtures: paths to the prepared reference data and to real portraits shipped in wheels."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TALKER_SHARED", REPO.parent / "shared"))
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference data not found at {REFERENCE} (set TALKER_SHARED)")
    return REFERENCE


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    """Grace Hopper's portrait, shipped in matplotlib's wheel."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="session")
def portrait(portrait_path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(portrait_path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def ditto_root(reference_dir, tmp_path_factory) -> Path:
    """A checkpoints root whose ``ditto/`` folder holds seeded Ditto networks in the published containers,
    a tiny HuBERT ONNX and a settings pickle (``tests/helpers/ditto_files.py``); 700 MB, written once."""
    from tests.helpers.ditto_files import write_ditto_tree

    return write_ditto_tree(reference_dir, tmp_path_factory.mktemp("ditto-checkpoints"))
