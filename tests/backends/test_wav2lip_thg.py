"""Wav2LipTHG end to end on a real portrait, with seeded checkpoints written as the real files.

Seeded S3FD weights "find" some box in any image; what matters here is that the whole stage runs
through the real files, detector and network and yields the right frames, not what they look like.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from app_modules import registry
from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BadInputError, MissingWeightsError, TalkerError
from app_modules.types import Audio
from tests.helpers.seeded_checkpoints import seeded_state_dict, write_s3fd, write_wav2lip
from THG.wav2lip_thg import Wav2LipTHG, _loop_indices, feather_mask, smooth_boxes

DATA = Path(__file__).resolve().parent.parent / "data" / "wav2lip"


@pytest.fixture(scope="module")
def weights_root(reference_dir, tmp_path_factory):
    """A checkpoints/ folder laid out like the catalog, holding seeded files in the real formats."""
    root = tmp_path_factory.mktemp("checkpoints")
    (root / "wav2lip").mkdir()
    write_wav2lip(reference_dir, root / "wav2lip" / "wav2lip_gan.pth")
    s3fd = seeded_state_dict(reference_dir, "s3fd")
    write_s3fd(reference_dir, root / "wav2lip" / "s3fd-619a316812.pth", state=s3fd)
    # A detector that sees background everywhere: every face score is ~1e-9.
    for k in [k for k in s3fd if "_mbox_conf." in k]:
        s3fd[k] = torch.zeros_like(s3fd[k])
        if k.endswith("bias"):
            s3fd[k][-1] = -10.0
            s3fd[k][:-1] = 10.0
    write_s3fd(reference_dir, root / "blind_s3fd.pth", state=s3fd)
    return root


@pytest.fixture(scope="module")
def thg(weights_root):
    # Through the registry, as the app builds it; options arrive as strings from the command line.
    return registry.create("thg", "wav2lip", {"batch_size": "4", "first_batch": "2", "detect_max_side": "320",
                                              "pads": "0,10,0,0"}, CheckpointManager(weights_root))


@pytest.fixture(scope="module")
def avatar(thg, portrait):
    return thg.prepare(portrait)


def _tone(seconds: float, rate: int) -> Audio:
    t = np.arange(round(seconds * rate)) / rate
    return Audio((0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32), rate)


def test_renders_portrait_frames_for_the_whole_audio(thg, avatar, portrait):
    assert isinstance(thg, Wav2LipTHG) and thg.device.type == "cpu"
    audio = _tone(0.2, 16000)
    frames = list(thg.render(avatar, audio))
    assert len(frames) == math.ceil(audio.duration * 25) == 5
    assert all(f.shape == portrait.shape and f.dtype == np.uint8 for f in frames)
    y1, y2, x1, x2 = avatar.boxes[0]
    outside = np.ones(portrait.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    for f in frames:
        assert np.array_equal(f[outside], portrait[outside])  # only the face box is ever touched
    assert np.abs(frames[0][y1:y2, x1:x2].astype(int) - portrait[y1:y2, x1:x2]).mean() > 1
    # The top of the box (eyes) is kept: the feathered mask is 0 there.
    assert np.array_equal(frames[0][y1:y1 + (y2 - y1) // 4, x1:x2], portrait[y1:y1 + (y2 - y1) // 4, x1:x2])


def test_other_sample_rates_and_short_clips(thg, avatar):
    assert len(list(thg.render(avatar, _tone(0.12, 24000)))) == 3
    assert len(list(thg.render(avatar, _tone(0.01, 22050)))) == 1
    assert len(list(thg.render(avatar, Audio(np.zeros(0, np.float32), 16000)))) == 1  # as frame_count says


def test_streams_batch_by_batch(thg, avatar, monkeypatch):
    calls = []
    decode = thg.model.decode
    monkeypatch.setattr(thg.model, "decode", lambda *a: calls.append(len(a[0])) or decode(*a))
    frames = thg.render(avatar, _tone(0.2, 16000))  # 5 frames: batches of 2, then up to 4
    next(frames)
    assert calls == [2]  # the first frame came out before the rest of the audio was rendered
    assert len(list(frames)) == 4 and calls == [2, 3]


def test_streaming_audio_gives_the_same_frames_sooner(thg, avatar):
    audio = _tone(0.32, 16000)  # 8 frames, arriving in eight 40 ms chunks
    pushed = []

    def chunks():
        for k in range(8):
            pushed.append(k)
            yield Audio(audio.samples[k * 640:(k + 1) * 640], 16000)

    stream = thg.render_stream(avatar, chunks())
    first = next(stream)
    assert len(pushed) < 8  # rendering started before the speech was complete
    streamed = np.stack([first, *stream]).astype(int)
    whole = np.stack(list(thg.render(avatar, audio))).astype(int)
    assert streamed.shape == whole.shape == (8, *avatar.frames[0].shape)
    assert np.abs(streamed - whole).max() <= 1  # same mel windows; only float rounding may differ
    assert list(thg.render_stream(avatar, [])) == []


def test_no_face_is_a_bad_input(thg, weights_root, portrait):
    blind = copy.copy(thg)  # same network, detector from a file that never scores a face
    blind._detector, blind._s3fd_path = None, weights_root / "blind_s3fd.pth"
    with pytest.raises(BadInputError, match="no face found in the image"):
        blind.prepare(portrait)
    with pytest.raises(BadInputError, match="RGB uint8"):
        thg.prepare(portrait.astype(np.float32))


def _photos() -> dict[str, list[np.ndarray]]:
    """The BGR frames ``make_fixtures.py`` gave the original pipeline (one recipe for both sides)."""
    spec = importlib.util.spec_from_file_location("wav2lip_fixtures", DATA / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.photos()


def test_face_boxes_are_the_wav2lip_pipelines_on_real_photos(thg):
    """``inference.face_detect`` of the original, run on seeded S3FD weights: the detector's colour order,
    post-processing, pads and box smoothing all go into these crops."""
    expected = json.loads((DATA / "s3fd_pipeline_boxes.json").read_text())
    full = copy.copy(thg)  # the default detector size: these photos are below it, as the original's full size
    full.options, full._detector = dataclasses.replace(thg.options, detect_max_side=640), None
    for name, frames in _photos().items():
        avatar = full.prepare([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames])
        assert avatar.boxes.tolist() == expected[name]["coords"], name
        assert avatar.boxes.tolist() != expected[name]["coords_if_fed_bgr"], name  # the order matters here


def test_short_video_avatar_loops_back_and_forth(thg, portrait):
    small = cv2.resize(portrait, (256, 300))
    video = [small, np.roll(small, 2, axis=1), np.roll(small, 4, axis=1)]
    av = thg.prepare(video)
    assert av.boxes.shape == (3, 4) and av.still_feats is None
    frames = list(thg.render(av, _tone(0.12, 16000)))
    assert len(frames) == 3 and all(f.shape == small.shape for f in frames)
    assert av.next_frame == 3  # the next sentence continues the loop
    assert list(_loop_indices(3, 0, 7)) == [0, 1, 2, 1, 0, 1, 2]
    assert list(_loop_indices(3, 5, 3)) == [1, 2, 1]


def test_reduced_precision_path_matches_float32(thg, weights_root, portrait):
    # The bf16 CPU path runs the same casts as fp16 on a GPU (network in low precision,
    # compositing in float32); it must give nearly the same frames.
    small = cv2.resize(portrait, (192, 224))
    bf16 = Wav2LipTHG(Wav2LipTHG.Options(cpu_bf16=True, batch_size=2), CheckpointManager(weights_root))
    assert bf16.dtype == torch.bfloat16
    outs = [np.stack(list(t.render(t.prepare(small), _tone(0.08, 16000)))).astype(int) for t in (thg, bf16)]
    assert outs[0].shape == outs[1].shape == (2, 224, 192, 3)
    assert np.abs(outs[0] - outs[1]).mean() < 2.0


def test_missing_weights_name_the_download_command(tmp_path):
    with pytest.raises(MissingWeightsError, match="cli download wav2lip"):
        Wav2LipTHG(Wav2LipTHG.Options(), CheckpointManager(tmp_path))
    with pytest.raises(MissingWeightsError, match="checkpoint file not found"):
        Wav2LipTHG(Wav2LipTHG.Options(checkpoint=str(tmp_path / "mine.pth")), CheckpointManager(tmp_path))
    # With only --checkpoint given, the detector is looked for in the catalog, then next to that file.
    (tmp_path / "mine.pth").write_bytes(b"")
    with pytest.raises(MissingWeightsError, match="s3fd-619a316812.pth -- fetch them with"):
        Wav2LipTHG(Wav2LipTHG.Options(checkpoint=str(tmp_path / "mine.pth")), CheckpointManager(tmp_path))
    (tmp_path / "s3fd.pth").write_bytes(b"")
    with pytest.raises(TalkerError, match="cannot read the checkpoint .*mine.pth"):  # got past the detector
        Wav2LipTHG(Wav2LipTHG.Options(checkpoint=str(tmp_path / "mine.pth")), CheckpointManager(tmp_path))


def test_options_are_validated():
    assert Wav2LipTHG.Options(pads="0, 20, 5,5").pads == (0, 20, 5, 5)
    with pytest.raises(TalkerError, match="top,bottom,left,right"):
        Wav2LipTHG.Options(pads="1,2")
    with pytest.raises(TalkerError, match="batch_size"):
        Wav2LipTHG.Options(batch_size=0)
    with pytest.raises(TalkerError, match="valid devices"):
        Wav2LipTHG(Wav2LipTHG.Options(device="tpu"), None)


def test_box_smoothing_is_the_originals():
    boxes = np.array([[0, 0, 10, 10], [2, 2, 12, 12], [4, 4, 14, 14], [6, 6, 16, 16], [8, 8, 18, 18],
                      [10, 10, 20, 21]])
    out = smooth_boxes(boxes)
    assert out.dtype == boxes.dtype
    assert list(out[0]) == [4, 4, 14, 14]  # mean of frames 0..4
    assert list(out[1]) == [6, 6, 16, 16]  # mean of frames 1..5, truncated
    # The tail averages the last five boxes, some of them already smoothed, as the original does.
    assert list(out[5]) == list(np.mean(np.vstack((out[1:5], boxes[5:])), axis=0).astype(int))
    assert np.array_equal(smooth_boxes(boxes[:1]), boxes[:1])


def test_feather_mask_covers_the_mouth_and_fades_to_the_edges():
    m = feather_mask(120, 100)
    assert m.shape == (120, 100) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1
    assert m[:40].max() == 0  # eyes and above: the original pixels
    assert m[80, 50] > 0.99  # mouth: the generated face
    assert m[:, 0].max() < 0.05 and m[-1].max() < 0.1  # no hard edge at the box border


class _MarkingEnhancer:
    """Stands in for GFPGAN: paints each face box it is given, and records the boxes."""

    def __init__(self):
        self.calls = []

    def enhance_many(self, frames, boxes, expand=1.0):
        self.calls.append((len(frames), list(boxes), expand))
        out = []
        for f, (x1, y1, x2, y2) in zip(frames, boxes, strict=True):
            f = f.copy()
            f[y1:y2, x1:x2] = 255
            out.append(f)
        return out


def test_face_enhancer_gets_every_frame_with_its_face_box(thg, avatar, monkeypatch):
    marker = _MarkingEnhancer()
    monkeypatch.setattr(thg, "enhancer", marker)
    frames = list(thg.render(avatar, _tone(0.3, 16000)))
    assert sum(n for n, _, _ in marker.calls) == len(frames) == 8
    y1, y2, x1, x2 = (int(v) for v in avatar.boxes[0])
    assert marker.calls[0][1][0] == (x1, y1, x2, y2) and marker.calls[0][2] == 1.5
    assert all((f[y1:y2, x1:x2] == 255).all() for f in frames)


def test_enhancer_option_names_the_missing_weights(weights_root, tmp_path):
    from app_modules.errors import MissingWeightsError

    opts = Wav2LipTHG.Options(checkpoint=str(weights_root / "wav2lip" / "wav2lip_gan.pth"), enhancer="gfpgan")
    with pytest.raises(MissingWeightsError, match="download gfpgan"):
        Wav2LipTHG(opts, CheckpointManager(tmp_path))
