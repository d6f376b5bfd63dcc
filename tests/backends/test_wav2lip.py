"""Wav2Lip parts against the original implementation's outputs (``shared/reference``).

Seeded weights go through the real loader from files in the published container formats, so
key names, the ``module.`` prefix and strict loading are checked along with the maths.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from app_modules.errors import MissingWeightsError, TalkerError
from tests.helpers.seeded_checkpoints import seeded_state_dict, write_s3fd, write_wav2lip
from THG.wav2lip.audio import StreamingMel, chunk_starts, mel_filterbank, mel_windows, melspectrogram
from THG.wav2lip.loading import load_s3fd, load_wav2lip, read_state_dict
from THG.wav2lip.model import Wav2Lip
from THG.wav2lip.s3fd import S3FD, best_face, decode_detections, nms


def _checksum(state, manifest):
    h = hashlib.sha256()
    for k in manifest:
        h.update(k.encode())
        h.update(state[k].contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def w2l_seeded(reference_dir):
    return json.loads((reference_dir / "wav2lip.json").read_text()), seeded_state_dict(reference_dir, "wav2lip")


@pytest.fixture(scope="module")
def w2l_file(w2l_seeded, reference_dir, tmp_path_factory):
    """A seeded checkpoint laid out like wav2lip_gan.pth: prefixed weights plus training extras."""
    return write_wav2lip(reference_dir, tmp_path_factory.mktemp("w2l") / "wav2lip_gan.pth", state=w2l_seeded[1])


@pytest.fixture(scope="module")
def s3fd_file(reference_dir, tmp_path_factory):
    return write_s3fd(reference_dir, tmp_path_factory.mktemp("s3fd") / "s3fd-619a316812.pth")  # a bare state dict


# ------------------------------------------------------------------------------------ generator

def test_wav2lip_parameters_match_the_published_manifest(w2l_seeded):
    manifest, _ = w2l_seeded
    own = Wav2Lip().state_dict()
    assert list(own) == list(manifest)
    assert {k: list(v.shape) for k, v in own.items()} == {k: v["shape"] for k, v in manifest.items()}


def test_wav2lip_forward_matches_original(w2l_file, w2l_seeded, reference_dir):
    manifest, _ = w2l_seeded
    model = load_wav2lip(w2l_file)
    checksums = json.loads((reference_dir / "seeded_checksums.json").read_text())
    assert _checksum(model.state_dict(), manifest) == checksums["wav2lip"]["sha256_all"]
    ref = np.load(reference_dir / "wav2lip_forward.npz")
    audio, face = torch.from_numpy(ref["audio"]), torch.from_numpy(ref["face"])
    with torch.inference_mode():
        out = model(audio, face).numpy()
        np.testing.assert_allclose(out, ref["output"], atol=1e-4, rtol=1e-4)
        # The path render() takes: BatchNorm folded, face features computed once per face.
        model.fuse()
        split = model.decode(model.encode_audio(audio), model.encode_face(face)).numpy()
        np.testing.assert_allclose(split, ref["output"], atol=1e-4, rtol=1e-4)
        # A single cached face broadcast over a batch of windows gives each window's own result.
        one = model.decode(model.encode_audio(audio), model.encode_face(face[:1])).numpy()
        np.testing.assert_allclose(one[0], ref["output"][0], atol=1e-4, rtol=1e-4)
        # The training layout (B, T, ...) folds time into the batch.
        seq = model(audio[None], face.permute(1, 0, 2, 3)[None]).numpy()
        np.testing.assert_allclose(seq[0].transpose(1, 0, 2, 3), ref["output"], atol=1e-4, rtol=1e-4)


def test_loader_accepts_a_bare_state_dict(w2l_seeded, tmp_path):
    _, sd = w2l_seeded
    path = tmp_path / "bare.pth"
    torch.save(sd, path)
    state = read_state_dict(path)
    assert list(state) == list(sd)
    assert torch.equal(state["output_block.1.weight"], sd["output_block.1.weight"])


def test_loader_errors_say_what_is_wrong(w2l_seeded, s3fd_file, tmp_path):
    with pytest.raises(MissingWeightsError, match="not found"):
        load_wav2lip(tmp_path / "nope.pth")
    with pytest.raises(TalkerError, match="not a Wav2Lip .* 352 missing"):
        load_wav2lip(s3fd_file)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(TalkerError, match="cannot read the checkpoint .*download it again"):
        load_wav2lip(broken)
    wrong_shape = tmp_path / "shape.pth"
    torch.save({"state_dict": {**w2l_seeded[1], "output_block.1.bias": torch.zeros(4)}}, wrong_shape)
    with pytest.raises(TalkerError, match="wrong shape .*output_block.1.bias"):
        load_wav2lip(wrong_shape)
    no_tensors = tmp_path / "meta.pth"
    torch.save({"global_step": 3}, no_tensors)
    with pytest.raises(TalkerError, match="holds no state dict"):
        load_wav2lip(no_tensors)


# ------------------------------------------------------------------------------------- detector

@pytest.fixture(scope="module")
def s3fd_outputs(s3fd_file, reference_dir):
    ref = np.load(reference_dir / "s3fd_forward.npz")
    with torch.inference_mode():
        out = load_s3fd(s3fd_file)(torch.from_numpy(ref["x"]))
    return ref, out


def test_s3fd_parameters_match_the_published_manifest(reference_dir):
    manifest = json.loads((reference_dir / "s3fd.json").read_text())
    own = S3FD().state_dict()
    assert list(own) == list(manifest)
    assert {k: list(v.shape) for k, v in own.items()} == {k: v["shape"] for k, v in manifest.items()}


def test_s3fd_forward_matches_original(s3fd_outputs):
    ref, out = s3fd_outputs
    assert len(out) == 12
    for level in range(6):
        for j, kind in enumerate(("cls", "reg")):
            name = f"{kind}{level + 1}"
            np.testing.assert_allclose(out[2 * level + j].numpy(), ref[name], atol=1e-5, rtol=1e-4, err_msg=name)


def _original_decode(outputs):
    """face-alignment's sfd ``detect`` loop, anchor by anchor, as the reference for the vectorised one."""
    boxes = []
    for i in range(len(outputs) // 2):
        cls = torch.softmax(outputs[2 * i], dim=1)[0].numpy().astype(np.float64)
        reg = outputs[2 * i + 1][0].numpy().astype(np.float64)
        stride = 2 ** (i + 2)
        for h, w in zip(*np.where(cls[1] > 0.05), strict=True):
            cx, cy, s = stride / 2 + w * stride, stride / 2 + h * stride, stride * 4.0
            px, py = cx + reg[0, h, w] * 0.1 * s, cy + reg[1, h, w] * 0.1 * s
            bw, bh = s * np.exp(reg[2, h, w] * 0.2), s * np.exp(reg[3, h, w] * 0.2)
            boxes.append([px - bw / 2, py - bh / 2, px + bw / 2, py + bh / 2, cls[1, h, w]])
    return np.array(boxes)


def test_detection_postprocessing_matches_original_loop(s3fd_outputs):
    ref, _ = s3fd_outputs
    raw = [torch.from_numpy(ref[f"{k}{i}"]) for i in range(1, 7) for k in ("cls", "reg")]
    mine = decode_detections(raw)[0]
    orig = _original_decode(raw)
    assert len(orig) > 10  # the seeded net scores plenty of anchors: a real test of the decoding
    order_m, order_o = np.lexsort(mine.T[::-1]), np.lexsort(orig.T[::-1])
    np.testing.assert_allclose(mine[order_m], orig[order_o], rtol=1e-5, atol=1e-3)
    kept_m, kept_o = mine[nms(mine, 0.3)], orig[nms(orig, 0.3)]
    np.testing.assert_allclose(np.sort(kept_m[:, 4]), np.sort(kept_o[:, 4]), rtol=1e-6)
    best = best_face(orig)
    top = kept_o[kept_o[:, 4] > 0.5][0] if (kept_o[:, 4] > 0.5).any() else None
    assert best == (None if top is None else tuple(int(v) for v in np.clip(top[:4], 0, None)))
    assert best_face(mine) == best


def test_nms_keeps_the_best_of_overlapping_boxes():
    dets = np.array([[10, 10, 50, 50, 0.9], [12, 12, 52, 52, 0.95], [100, 100, 140, 140, 0.7],
                     [0, 0, 5, 5, 0.3]], dtype=np.float64)
    assert nms(dets, 0.3) == [1, 2, 3]
    assert best_face(dets) == (12, 12, 52, 52)
    assert best_face(dets[3:]) is None  # only scores above 0.5 count as faces


# ------------------------------------------------------------------------------------------ mel

def test_mel_matches_original(reference_dir):
    ref = np.load(reference_dir / "wav2lip_mel.npz")
    mel = melspectrogram(ref["wav"])
    assert mel.shape == (80, 161) and mel.dtype == np.float64
    np.testing.assert_allclose(mel, ref["mel"], atol=1e-9, rtol=0)
    chunks = mel_windows(mel, chunk_starts(mel.shape[1], len(ref["mel_chunks"])))
    np.testing.assert_allclose(chunks, ref["mel_chunks"], atol=1e-9, rtol=0)


@pytest.mark.parametrize("sizes", [[401, 31599], [100, 300, 5, 995, 1000, 29600], [3200] * 10])
def test_streaming_mel_equals_the_whole(reference_dir, sizes):
    wav = np.load(reference_dir / "wav2lip_mel.npz")["wav"]
    whole = melspectrogram(wav)
    stream, pos = StreamingMel(), 0
    for n in sizes:
        part = stream.push(wav[pos:pos + n])
        pos += n
        # Every frame returned is final: its window lies inside the audio received so far.
        assert part.shape[1] == max(0, (pos - 400) // 200 + 1) if pos > 400 else part.shape[1] == 0
        np.testing.assert_allclose(part, whole[:, :part.shape[1]], atol=1e-12, rtol=0)
    np.testing.assert_allclose(stream.finish(), whole, atol=1e-12, rtol=0)


def test_chunks_cover_every_video_frame():
    # 2 s at 25 fps is 50 frames; the original stops at 47 windows, we repeat the last one.
    starts = chunk_starts(161, 50)
    assert starts[0] == 0 and starts[5] == 16 and starts[46] == 145 and list(starts[46:]) == [145] * 4
    tiny = melspectrogram(np.zeros(800, np.float32))  # 50 ms: fewer mel frames than one window
    windows = mel_windows(tiny, chunk_starts(tiny.shape[1], 2))
    assert windows.shape == (2, 80, 16) and np.all(windows[:, :, tiny.shape[1]:] == -4.0)
    assert melspectrogram(np.zeros(0, np.float32)).shape == (80, 3)  # an empty sentence: silence


def test_mel_filterbank_is_slaney_normalised():
    fb = mel_filterbank()
    assert fb.shape == (80, 401) and fb.dtype == np.float32
    assert np.all(fb >= 0) and np.all(fb.max(axis=1) > 0)
    hz = np.linspace(0, 8000, 401)
    centres = hz[fb.argmax(axis=1)]
    assert np.all(np.diff(centres) >= 0) and 40 < centres[0] < 120 and 7000 < centres[-1] < 7600
