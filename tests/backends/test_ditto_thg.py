"""The Ditto backend end to end on a real portrait (Grace Hopper), with seeded published files found
through the checkpoint catalog, and ``download ditto`` against a local server that behaves like the hub.

The renderer runs at render_size 128 (a quarter of the published size's work, the same code) with one
DDIM step: seeded weights make faces that look like nothing in particular, so what is checked is the
flow of frames, their number and geometry, and streaming.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BadInputError, MissingWeightsError, TalkerError
from app_modules.types import Audio

REPO = Path(__file__).resolve().parents[2]


def _speech(seconds: float, sr: int = 16000) -> Audio:
    t = np.arange(int(seconds * sr)) / sr
    return Audio((0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32), sr)


def test_options_are_checked_before_loading(tmp_path):
    from THG.ditto_thg import DittoTHG

    for bad, match in ((dict(render_size=200), "render_size 200; choices = \\[128, 256"),
                       (dict(lookahead=41), "lookahead must be between 1 and 40"),
                       (dict(emotion="smug"), "choices = \\['', 'angry'"), (dict(blink_every=-3), "blink_every")):
        with pytest.raises(TalkerError, match=match):
            DittoTHG(DittoTHG.Options(device="cpu", **bad), CheckpointManager(tmp_path))
    with pytest.raises(MissingWeightsError, match="download ditto"):
        DittoTHG(DittoTHG.Options(device="cpu"), CheckpointManager(tmp_path))
    with pytest.raises(MissingWeightsError, match="laid out as the hub repo"):
        DittoTHG(DittoTHG.Options(device="cpu", checkpoint=str(tmp_path)), CheckpointManager(tmp_path))


@pytest.fixture(scope="module")
def backend(ditto_root):
    from THG.ditto_thg import DittoTHG

    options = DittoTHG.Options(device="cpu", render_size=128, sampling_timesteps=1, batch_size=4, idle_seconds=0.04)
    return DittoTHG(options, CheckpointManager(ditto_root))


@pytest.fixture(scope="module")
def avatar(backend, portrait):
    return backend.prepare(portrait)


def test_prepare_finds_the_face_and_its_crop(avatar, portrait):
    h, w = portrait.shape[:2]
    assert avatar.image.shape == (h // 2 * 2, w // 2 * 2, 3)
    x0, y0, x1, y1 = avatar.paste.box  # the crop's footprint in the photo: the face, not the whole image
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and (x1 - x0) * (y1 - y0) < 0.9 * w * h
    assert avatar.feature.shape == (1, 32, 16, 32, 32)
    assert avatar.eye_open.shape == (1, 2) and 0.2 < avatar.eye_open.min() < 2  # open eyes in the photo
    assert {k: v.shape for k, v in avatar.source.items()}["kp"] == (1, 63)


def test_no_face_is_a_bad_input(backend):
    with pytest.raises(BadInputError, match="no face"):
        backend.prepare(np.full((240, 320, 3), 128, np.uint8))


AUDIO = _speech(0.1)  # 2.5 frames: the last, partial one counts


@pytest.fixture(scope="module")
def rendered(backend, avatar):
    return list(backend.render(avatar, AUDIO))


def test_render_gives_one_frame_per_25th_of_a_second_pasted_into_the_photo(avatar, rendered):
    assert len(rendered) == math.ceil(AUDIO.duration * 25) == 3
    assert {f.shape for f in rendered} == {avatar.image.shape} and rendered[0].dtype == np.uint8
    x0, y0, x1, y1 = avatar.paste.box
    outside = np.ones(avatar.image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    for f in rendered:
        np.testing.assert_array_equal(f[outside], avatar.image[outside])  # only the face crop is repainted
        assert np.abs(f[y0:y1, x0:x1].astype(int) - avatar.image[y0:y1, x0:x1]).mean() > 5


def test_render_stream_gives_the_frames_of_the_whole_audio(backend, avatar, rendered):
    cuts = [0, 700, 1201]  # pieces of odd sizes, as a streaming TTS hands them over
    pieces = [Audio(AUDIO.samples[a:b], AUDIO.sample_rate) for a, b in zip(cuts, cuts[1:] + [None], strict=True)]
    streamed = list(backend.render_stream(avatar, pieces))
    assert len(streamed) == len(rendered)
    for a, b in zip(streamed, rendered, strict=True):
        np.testing.assert_array_equal(a, b)


def test_idle_frames_are_the_model_on_silence(backend, avatar):
    idle = backend.idle_frames(avatar)
    assert len(idle) == 1 and idle[0].shape == avatar.image.shape
    assert backend.idle_frames(avatar) is idle  # rendered once per portrait


# ---- download ditto -------------------------------------------------------------------------------
def test_download_ditto_fetches_every_catalog_file_under_the_repos_paths(tmp_path):
    """``python -m app_modules.cli download ditto`` against a local server that answers like the hub:
    the eight files land where the backend asks the catalog for them (small stand-in contents)."""
    from app_modules.checkpoints import CATALOG
    from tests.fakes.hub_server import HubServer

    files = CATALOG["ditto"]
    contents = {f.name: f"{f.name}\n".encode() * 64 for f in files}
    with HubServer() as hub:
        for f in files:
            hub.add(f.repo_id, f.filename, contents[f.name], lfs=not f.name.endswith(".pkl"))
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp_path / "hub"),
               "TALKER_CHECKPOINTS": str(tmp_path / "checkpoints")}
        proc = subprocess.run([sys.executable, "-m", "app_modules.cli", "download", "ditto"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    ck = CheckpointManager(tmp_path / "checkpoints", hub_cache=tmp_path / "hub")
    assert len(files) == 8 and ck.missing("ditto") == []
    for f in files:
        assert ck.require("ditto", f.name).read_bytes() == contents[f.name], f.name
    from app_modules import registry

    assert registry.why_unavailable(registry.spec("thg", "ditto"), ck) is None
