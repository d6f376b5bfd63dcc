"""Ditto's motion path against the original implementation run on seeded weights, and the pieces
around it: HuBERT features (a tiny ONNX model with the published interface, made in the test), the
settings pickle (read without running code), the crop / paste-back geometry and eye measures.

``tests/data/ditto/ditto_motion.npz`` holds the original's motion for fixed features and a fixed seed
(offline: ``_audio2motion_offline`` + ``MotionStitch``; online: the streaming worker
``_audio2motion_worker``); ``ditto_geometry.npz`` its crop, mask, paste-back and eye numbers. See the
README there.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from app_modules.errors import TalkerError
from tests.helpers.ditto_files import blink_template, ditto_config, write_ditto_config, write_tiny_hubert
from THG.ditto.cfg import load_config, safe_load
from THG.ditto.face import FacePoints, PasteBack, crop, crop_matrix, eye_measures, feather_mask
from THG.ditto.hubert import HubertFeatures, frame_count
from THG.ditto.lmdm import DDIMSampler
from THG.ditto.loaders import load_network
from THG.ditto.motion import (
    Conditions,
    Stitcher,
    StitchSettings,
    blink_schedule,
    emotion_rows,
    to_motion,
    to_vector,
)
from THG.ditto.scheduler import MotionStream

DATA = Path(__file__).resolve().parents[1] / "data" / "ditto"
torch.set_num_threads(2)


def _close(name, mine, ref, atol, rtol=1e-4):
    mine = np.asarray(mine)
    assert mine.shape == ref.shape, f"{name}: shape {mine.shape} != {ref.shape}"
    assert np.allclose(mine, ref, atol=atol, rtol=rtol), f"{name}: max |diff| {np.abs(mine - ref).max():.3g}"


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(DATA / "ditto_motion.npz"))


@pytest.fixture(scope="module")
def hubert(tmp_path_factory):
    return HubertFeatures(write_tiny_hubert(tmp_path_factory.mktemp("hubert") / "tiny.onnx"))


@pytest.fixture(scope="module")
def nets(ditto_root):
    models = ditto_root / "ditto" / "ditto_pytorch" / "models"
    return load_network("lmdm", models / "lmdm_v0.4_hubert.pth"), load_network("stitch", models / "stitch_network.pth")


def _sampler(lmdm, steps, seed):
    ddim = DDIMSampler(lmdm, steps, torch.Generator().manual_seed(seed))
    return lambda kp, cond: ddim.sample(torch.from_numpy(kp), torch.from_numpy(cond)).numpy()


def _stitch_net(stitch):
    def run(x_s, x_d):
        with torch.no_grad():
            x_s, x_d = (torch.from_numpy(np.ascontiguousarray(x)) for x in (x_s, x_d))
            return stitch(x_s, x_d).numpy()
    return run


def _motion(ref, prefix):
    return {k: ref[f"{prefix}_{k}"] for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")}


# ---- audio features -------------------------------------------------------------------------------
def test_hubert_features_match_the_original_chunking(hubert, ref):
    _close("features", hubert.features(ref["wav"]), ref["feat"], 1e-5)
    _close("first window", hubert.window(np.concatenate([np.zeros(2000, np.float32), ref["wav"][:4480]])),
           ref["feat_chunk0"], 1e-5)


@pytest.mark.parametrize("samples", [0, 1, 639, 640, 3200, 9999])
def test_hubert_stream_gives_the_offline_rows_whatever_the_chunks(hubert, samples):
    wav = np.random.default_rng(samples).uniform(-0.3, 0.3, samples).astype(np.float32)
    whole = hubert.features(wav)
    assert whole.shape == (frame_count(samples), 1024)
    stream, parts, at = hubert.stream(), [], 0
    rng = np.random.default_rng(1)
    while at < samples:
        n = int(rng.integers(1, 2500))
        parts.append(stream.push(wav[at:at + n]))
        at += n
    parts.append(stream.finish())
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_hubert_rejects_another_onnx_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["audio"], ["out"])], "other",
                              [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 16000])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 16000])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "other.onnx"))
    with pytest.raises(TalkerError, match="not Ditto's streaming HuBERT"):
        HubertFeatures(tmp_path / "other.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(TalkerError, match="cannot load the HuBERT model"):
        HubertFeatures(tmp_path / "broken.onnx")


# ---- motion path ----------------------------------------------------------------------------------
def test_offline_motion_path_matches_the_original(nets, ref):
    """features -> conditions -> LMDM windows (overlap 10, 3 DDIM steps) -> clip -> relative stitching
    with blinks every 20 frames -> keypoints, for seed 10, features arriving 13 frames at a time."""
    lmdm, stitch = nets
    source = _motion(ref, "src")
    cond = Conditions(emotion_rows(4), ref["src_eye_open"], ref["src_eye_ball"], source["kp"].reshape(-1))
    stream = MotionStream(_sampler(lmdm, 3, 10), cond, to_vector(source), overlap=10, online=False)
    parts = [stream.push(ref["feat"][i:i + 13]) for i in range(0, 90, 13)]
    assert sum(map(len, parts)) == 69  # the first window's frames that no later window can change
    res = np.concatenate(parts + [stream.finish(90)])
    _close("motion", res, ref["off_res"], 2e-4)

    motion = to_motion(np.clip(res, ref["clip"][0], ref["clip"][1]))
    d0 = {k: v[:1] for k, v in motion.items()}
    rows = blink_schedule(90, len(ref["blink"]), 20, np.random.default_rng())
    np.testing.assert_array_equal(rows, ref["off_blink_idx"])
    x_s, x_d = Stitcher(source, StitchSettings(blink=ref["blink"]), _stitch_net(stitch))(motion, d0, rows)
    _close("x_s", x_s, ref["off_x_s"], 1e-5)
    _close("x_d", x_d, ref["off_x_d"], 1e-4)


def test_online_motion_path_matches_the_original_streaming_worker(nets, ref):
    """The online schedule (70 frames of silence first, overlap 70, one DDIM step, seed 11) with a
    canonical template, features arriving 7 frames at a time: the reference frame, every released
    frame and the keypoints. The original releases 7 padded frames past the audio; those are cut."""
    lmdm, stitch = nets
    source, template = _motion(ref, "src"), _motion(ref, "tpl")
    frames = 43
    cond = Conditions(emotion_rows(4), ref["tpl_eye_open"], ref["tpl_eye_ball"], template["kp"].reshape(-1))
    stream = MotionStream(_sampler(lmdm, 1, 11), cond, to_vector(template), overlap=70, online=True,
                          silence=np.zeros((70, 1024), np.float32))  # the tiny HuBERT hears silence as zeros
    parts = [stream.push(ref["feat"][i:min(i + 7, frames)]) for i in range(0, frames, 7)]
    res = np.concatenate(parts + [stream.finish(frames)])
    assert len(res) == frames and len(ref["on_motion"]) == frames + 7
    _close("d0", stream.d0, ref["on_d0"], 2e-4)
    _close("motion", res, ref["on_motion"][:frames], 2e-4)
    settings = StitchSettings(blink=None, template_scale=float(template["scale"].reshape(-1)[0]))
    x_s, x_d = Stitcher(source, settings, _stitch_net(stitch))(to_motion(res), to_motion(stream.d0))
    _close("x_s", x_s, ref["on_x_s"], 1e-5)
    _close("x_d", x_d, ref["on_x_d"][:frames], 2e-4)


def _toy_sampler(seed=0):
    """A cheap stand-in for the LMDM with the same interface: deterministic in its inputs and in the
    order of its calls (like the DDIM sampler's noise), so the schedule is what is compared."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((1103, 265)).astype(np.float32) * 0.05
    gen = np.random.default_rng(seed + 1)

    def sample(kp, cond):
        return (np.tanh(cond[0] @ w) + 0.1 * kp + 0.01 * gen.standard_normal((80, 265)))[None].astype(np.float32)
    return sample


@pytest.mark.parametrize("online,overlap", [(True, 70), (True, 75), (True, 40), (False, 10), (False, 30)])
def test_motion_stream_is_the_same_fed_whole_or_in_pieces(online, overlap):
    rng = np.random.default_rng(overlap)
    frames = 137
    feats = rng.standard_normal((frames, 1024)).astype(np.float32) * 0.1
    cond = Conditions(emotion_rows([3, 4]), rng.uniform(0.2, 0.4, (3, 2)).astype(np.float32),
                      rng.uniform(-0.01, 0.01, (3, 6)).astype(np.float32), rng.standard_normal(63).astype(np.float32))

    def run(chunks):
        s = MotionStream(_toy_sampler(), cond, np.zeros(265, np.float32), overlap=overlap, online=online,
                         silence=np.zeros((overlap, 1024), np.float32))
        s.windows.keep_log = True
        at, out, released = 0, [], []
        for n in chunks:
            out.append(s.push(feats[at:at + n]))
            at += n
            released.append((at, s.emitted))
        out.append(s.finish(frames))
        return np.concatenate(out), s.windows.log, released, s

    whole, log_whole, _, s = run([frames])
    sizes = rng.integers(1, 12, 40)
    sizes = list(sizes[np.cumsum(sizes) < frames]) + [frames - int(sizes[np.cumsum(sizes) < frames].sum())]
    pieces, log_pieces, released, _ = run(sizes)
    assert whole.shape == (frames, 265)
    np.testing.assert_array_equal(pieces, whole)
    assert len(log_pieces) == len(log_whole)  # window by window: the same conditioning, in the same order
    for (kp_a, cond_a), (kp_b, cond_b) in zip(log_pieces, log_whole, strict=True):
        np.testing.assert_array_equal(kp_a, kp_b)
        np.testing.assert_array_equal(cond_a, cond_b)
    # frames leave as soon as their window is sampled: after each piece, exactly the frames that the
    # windows complete by then have finished (online: all but the first window's; offline: all that no
    # later window can cross-fade into or smooth)
    valid = 80 - overlap
    for heard, out in released:
        lead = overlap if online else 0
        windows = (heard + lead - 80) // valid + 1 if heard + lead >= 80 else 0
        expected = max(windows - 1, 0) * valid if online else max(windows * valid - 1, 0)
        assert out == min(expected, heard), (heard, out, expected)
    assert s.d0 is not None


def test_blink_schedule_forms():
    rng = np.random.default_rng(0)
    assert not blink_schedule(300, 8, -1, rng).any()
    fixed = blink_schedule(100, 5, 20, rng)
    assert list(np.flatnonzero(fixed == 1)) == [21, 46, 71] and fixed[20:25].tolist() == [0, 1, 2, 3, 4]
    random_gaps = blink_schedule(3000, 8, 0, rng)
    starts = np.flatnonzero(np.diff((random_gaps > 0).astype(int)) == 1)
    assert len(starts) > 20 and set(np.diff(starts) - 8) <= set(range(60, 101))


def test_emotion_forms():
    happy = emotion_rows(3)
    assert happy.shape == (1, 8) and happy.argmax() == 3 and np.isclose(happy.sum(), 1)
    mixed = emotion_rows([3, 4])
    assert np.isclose(mixed[0, 3], mixed[0, 4]) and mixed[0, 3] > 0.49
    assert emotion_rows([[4], [3, 4]]).shape == (2, 8)
    with pytest.raises(ValueError, match="angry"):
        emotion_rows(9)


# ---- settings file --------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 4])
def test_settings_pickle_is_read_without_running_code(tmp_path, protocol):
    blink = blink_template(10)
    clip = np.stack([np.full(265, -2, np.float32), np.full(265, 2, np.float32)])
    path = write_ditto_config(tmp_path / "cfg.pkl", ditto_config(emo=np.int64(3), blink=blink, clip=clip, extra={
        "delta_eye_open_n": [40, 70], "use_d_keys": {"exp": 1.0, "pitch": 0.5}, "fix_kp_cond_dim": (0, 202)}),
        protocol=protocol)
    cfg = load_config(path)
    assert cfg.emo.argmax() == 3 and cfg.overlap == 10 and cfg.sampling_timesteps == 50 and not cfg.online
    np.testing.assert_array_equal(cfg.blink, blink)
    np.testing.assert_array_equal(cfg.clip[1], clip[1])
    assert cfg.blink_open == [40, 70] and cfg.use_d_keys == {"exp": 1.0, "pitch": 0.5}
    assert cfg.fix_kp_cond_dim == (0, 202) and cfg.template is None


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/ditto-pwned",))


def test_settings_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"default_kwargs": {"emo": _Exploit()}}))
    with pytest.raises(TalkerError, match="refused global (posix|os).system"):
        load_config(path)
    assert not Path("/tmp/ditto-pwned").exists()
    path.write_bytes(pickle.dumps({"default_kwargs": {"emo": "cheerful"}}))
    with pytest.raises(TalkerError, match="unsupported emotion"):
        load_config(path)
    assert safe_load(write_ditto_config(tmp_path / "ok.pkl", {"a": np.arange(3)}))["a"].tolist() == [0, 1, 2]


# ---- photo geometry -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def geo():
    return dict(np.load(DATA / "ditto_geometry.npz"))


def _points(pts):
    return FacePoints(pts, pts[[0, 6, 12, 18]].mean(0), pts[[24, 30, 36, 42]].mean(0), pts[[48, 66]].mean(0))


def test_crop_matches_the_original(geo):
    p = _points(geo["crop_pts"])
    for size in (512, 64):
        m = crop_matrix(p, size, scale=2.3, vy=-0.125)
        _close(f"M_o2c {size}", m, geo[f"crop{size}_M_o2c"], 1e-4, 1e-5)
        _close(f"M_c2o {size}", np.linalg.inv(m), geo[f"crop{size}_M_c2o"], 1e-3, 1e-5)
    np.testing.assert_array_equal(crop(geo["crop_img"], geo["crop64_M_o2c"], 64), geo["crop64_img"])


def test_feather_mask_and_paste_back_match_the_original(geo):
    _close("mask", feather_mask(64, 48)[..., None], geo["mask_64x48"], 1e-6)
    big = feather_mask(512, 512)
    _close("mask row", big[256], geo["mask_512_row256"], 1e-6)
    _close("mask column", big[:, 256], geo["mask_512_col256"], 1e-6)
    out = PasteBack(geo["crop_img"], np.linalg.inv(geo["crop64_M_c2o"]), 64)(geo["putback_render"])
    diff = np.abs(out.astype(int) - geo["putback_out"])
    # bilinear resampling of a noise image: a bit-level difference in the matrix moves a few pixels
    assert (diff <= 1).mean() > 0.999 and diff.max() <= 8, (diff.max(), (diff > 1).sum())


def test_eye_measures_match_the_original(geo):
    eye_open, eye_ball = eye_measures(geo["eye_lmk478"][0])
    _close("eye open", eye_open, geo["eye_open"], 1e-6)
    _close("eye ball", eye_ball, geo["eye_ball"], 1e-6)
