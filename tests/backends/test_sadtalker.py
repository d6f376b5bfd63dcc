"""SadTalker networks against the original implementation's outputs (``shared/reference``), and the
backend end to end on a real portrait.

The seeded weights are written in the published containers (one prefixed safetensors file; the
mapping inside ``{'mapping': ...}``) and read back through the real loaders, so key names, prefixes
and strict loading are checked along with the maths. Building them takes a few seconds and 725 MB,
so it happens once for this module.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BadInputError, TalkerError
from app_modules.types import Audio
from tests.helpers.seeded_checkpoints import write_sadtalker, write_sadtalker_mapping
from THG.sadtalker.audio2pose import smooth_pose
from THG.sadtalker.loaders import load_mapping, load_safetensors
from THG.sadtalker.mapping import keypoint_transformation
from THG.sadtalker.mel import indiv_mels, melspectrogram


@pytest.fixture(scope="module")
def checkpoint_root(reference_dir, tmp_path_factory):
    """A checkpoints folder laid out as the catalog expects, holding seeded weights."""
    root = tmp_path_factory.mktemp("ckpt")
    folder = root / "sadtalker"
    folder.mkdir()
    write_sadtalker(reference_dir, folder / "SadTalker_V0.0.2_256.safetensors")
    write_sadtalker_mapping(reference_dir, folder / "mapping_00229-model.pth.tar")
    return root


@pytest.fixture(scope="module")
def nets(checkpoint_root):
    folder = checkpoint_root / "sadtalker"
    nets = load_safetensors(folder / "SadTalker_V0.0.2_256.safetensors")
    nets["mapping"] = load_mapping(folder / "mapping_00229-model.pth.tar")
    return nets


def _close(name, mine, ref, atol, rtol=1e-4):
    mine = mine.detach().numpy() if isinstance(mine, torch.Tensor) else np.asarray(mine)
    assert mine.shape == ref.shape, f"{name}: shape {mine.shape} != {ref.shape}"
    diff = np.abs(mine - ref).max()
    assert np.allclose(mine, ref, atol=atol, rtol=rtol), f"{name}: max |diff| {diff:.3g}"


def _fixture(reference_dir, name):
    return dict(np.load(reference_dir / name))


# ---- audio front end ------------------------------------------------------------------------------
def test_mel_and_indiv_mels_match_upstream(reference_dir):
    ref = _fixture(reference_dir, "wav2lip_mel.npz")
    _close("mel (constant pad)", melspectrogram(ref["wav"]), ref["mel_constant_pad"], 1e-9, 0)
    _close("indiv_mels", indiv_mels(ref["wav"]), ref["sadtalker_indiv_mels"], 1e-4, 0)


def test_indiv_mels_pads_to_the_asked_frame_count():
    wav = np.zeros(1000, np.float32)  # 1.56 frames of audio
    assert indiv_mels(wav).shape == (1, 80, 16)
    assert indiv_mels(wav, frames=2).shape == (2, 80, 16)


# ---- networks -------------------------------------------------------------------------------------
def test_kp_extractor(nets, reference_dir):
    ref = _fixture(reference_dir, "sadtalker_kp_extractor.npz")
    with torch.no_grad():
        _close("kp value", nets["kp_extractor"](torch.from_numpy(ref["x"])), ref["value"], 1e-5)


def test_mapping(nets, reference_dir):
    ref = _fixture(reference_dir, "sadtalker_mapping.npz")
    with torch.no_grad():
        out = nets["mapping"](torch.from_numpy(ref["input_3dmm"]))
    for k in ("yaw", "pitch", "roll", "t", "exp"):
        _close(k, out[k], ref[k], 1e-5)


def test_audio2exp(nets, reference_dir):
    ref = _fixture(reference_dir, "sadtalker_audio2exp.npz")
    with torch.no_grad():
        out = nets["audio2exp"](*(torch.from_numpy(ref[k]) for k in ("indiv_mels", "ref", "ratio_gt")))
    _close("exp_coeff_pred", out, ref["exp_coeff_pred"], 1e-4)


@pytest.mark.parametrize("case", ["a", "b"])  # a: two windows (one partial); b: one short window
def test_audio2pose(nets, reference_dir, case):
    ref = {k[2:]: v for k, v in _fixture(reference_dir, "sadtalker_audio2pose.npz").items() if k[0] == case}
    assert int(ref["num_frames"]) == ref["indiv_mels"].shape[1]
    with torch.no_grad():
        motion = nets["audio2pose"](torch.from_numpy(ref["indiv_mels"]), torch.from_numpy(ref["ref"]),
                                    torch.from_numpy(ref["class"]), list(torch.from_numpy(ref["z"])))
    pose = torch.from_numpy(ref["ref"])[:, :1, 64:70] + motion
    _close("pose_motion_pred", motion, ref["pose_motion_pred"], 1e-4)
    _close("pose_pred", pose, ref["pose_pred"], 1e-4)
    _close("pose_pred_savgol", smooth_pose(pose.numpy()), ref["pose_pred_savgol"], 1e-4)


def test_face_3drecon(nets, reference_dir):
    ref = _fixture(reference_dir, "sadtalker_face_3drecon.npz")
    with torch.no_grad():
        _close("coeffs", nets["face_3drecon"](torch.from_numpy(ref["x"])), ref["coeffs"], 1e-4)


def test_generator_with_keypoint_transformation(nets, reference_dir):
    ref = _fixture(reference_dir, "sadtalker_generator.npz")
    source = torch.from_numpy(ref["source_image"])
    with torch.no_grad():
        kp = nets["kp_extractor"](source)
        he = {"source": nets["mapping"](torch.from_numpy(ref["source_semantics"])),
              "driving": nets["mapping"](torch.from_numpy(ref["target_semantics"]))}
        _close("kp_canonical", kp, ref["kp_canonical"], 1e-5)
        for which, out in he.items():
            for k in ("yaw", "pitch", "roll", "t", "exp"):
                _close(f"he_{which}_{k}", out[k], ref[f"he_{which}_{k}"], 1e-5)
        kp_source = keypoint_transformation(kp, he["source"])
        kp_driving = keypoint_transformation(kp, he["driving"])
        _close("kp_source", kp_source, ref["kp_source"], 1e-5)
        _close("kp_driving", kp_driving, ref["kp_driving"], 1e-5)
        out = nets["generator"](source, kp_driving=kp_driving, kp_source=kp_source)
    _close("occlusion_map", out["occlusion_map"], ref["occlusion_map"], 1e-5)
    _close("prediction", out["prediction"], ref["prediction"], 2e-4)


# ---- loaders --------------------------------------------------------------------------------------
def test_loaders_reject_foreign_files(tmp_path):
    other = tmp_path / "other.safetensors"
    save_file({"model.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(TalkerError, match="no 'kp_extractor.\\*' weights"):
        load_safetensors(other)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"audio2exp.mapping1.weight": torch.zeros(64, 10)}, str(wrong))
    with pytest.raises(TalkerError, match="missing.*wrong shape"):
        load_safetensors(wrong, names=("audio2exp",))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 16)
    with pytest.raises(TalkerError, match="cannot read"):
        load_safetensors(broken)
    no_mapping = tmp_path / "mapping.pth.tar"
    torch.save({"generator": {}}, no_mapping)
    with pytest.raises(TalkerError, match="no 'mapping' entry"):
        load_mapping(no_mapping)


# ---- backend --------------------------------------------------------------------------------------
def test_options_are_checked_before_loading(tmp_path):
    from THG.sadtalker_thg import SadTalkerTHG

    with pytest.raises(TalkerError, match="choices = \\['crop', 'extcrop', 'resize', 'full'\\]"):
        SadTalkerTHG(SadTalkerTHG.Options(preprocess="fit"), CheckpointManager(tmp_path))
    with pytest.raises(TalkerError, match="pose_style"):
        SadTalkerTHG(SadTalkerTHG.Options(pose_style=46), CheckpointManager(tmp_path))
    with pytest.raises(TalkerError, match="download sadtalker"):
        SadTalkerTHG(SadTalkerTHG.Options(device="cpu"), CheckpointManager(tmp_path))


@pytest.fixture(scope="module")
def backend(checkpoint_root):
    from THG.sadtalker_thg import SadTalkerTHG

    # render_size 128 runs the 256 model at a quarter of the cost; the code path is the same
    options = SadTalkerTHG.Options(device="cpu", render_size=128, batch_size=2)
    return SadTalkerTHG(options, CheckpointManager(checkpoint_root))


@pytest.fixture(scope="module")
def avatar(backend, portrait):
    return backend.prepare(portrait)


def test_render_portrait_end_to_end(backend, avatar, portrait):
    x1, y1, x2, y2 = avatar.box
    h, w = portrait.shape[:2]
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and (x2 - x1) < w  # a face crop, not the whole image
    assert avatar.coeffs.shape == (70,) and np.isfinite(avatar.coeffs).all()

    sr = 16000
    t = np.arange(int(0.1 * sr)) / sr  # 2.5 frames of speech: the last, partial one counts
    audio = Audio((0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32), sr)
    frames = list(backend.render(avatar, audio))
    assert len(frames) == math.ceil(audio.duration * 25) == 3  # batches of 2 and 1
    assert {f.shape for f in frames} == {frames[0].shape}
    assert frames[0].dtype == np.uint8 and frames[0].shape[1] == 128 and frames[0].shape[2] == 3
    assert all(f.std() > 1 for f in frames)  # an image, not a flat fill


def test_same_seed_same_coefficients(backend, avatar):
    audio = Audio(np.random.default_rng(1).uniform(-0.3, 0.3, 16000).astype(np.float32), 16000)
    a = backend.coefficients(avatar, audio, 12)
    b = backend.coefficients(avatar, audio, 12)
    assert a.shape == (12, 70) and np.array_equal(a, b)
    assert np.abs(a[:, 64:] - a[:1, 64:]).max() > 0  # the head moves


def test_no_face_is_a_bad_input(backend):
    with pytest.raises(BadInputError, match="no face"):
        backend.prepare(np.full((240, 320, 3), 128, np.uint8))


def test_audio2pose_one_frame_clip_has_no_motion(nets):
    with torch.no_grad():
        motion = nets["audio2pose"](torch.zeros(1, 1, 1, 80, 16), torch.zeros(1, 1, 70), torch.tensor([0]), [])
    assert motion.shape == (1, 1, 6) and not motion.any()


def test_face_enhancer_sees_each_rendered_face_at_its_size(backend, avatar, monkeypatch):
    seen = []

    class Enhancer:  # stands in for GFPGAN: records the faces and returns them brightened
        face_size = 512

        def enhance_faces(self, faces):
            seen.append(faces.shape)
            return np.full_like(faces, 250)

    monkeypatch.setattr(backend, "enhancer", Enhancer())
    sr = 16000
    audio = Audio(np.zeros(int(0.08 * sr), np.float32), sr)
    frames = list(backend.render(avatar, audio))
    assert seen and all(s[1:] == (512, 512, 3) for s in seen) and sum(s[0] for s in seen) == len(frames) == 2
    assert all(f.mean() > 240 for f in frames)


# ---- reference videos (upstream's --ref_pose / --ref_eyeblink) ------------------------------------
REF_FRAMES = 5


def _write_video(path, frames):
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    assert writer.isOpened(), "this OpenCV build cannot write mp4v"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def moving_video(portrait, tmp_path_factory):
    """The portrait turning (3 degrees a frame) and sliding a little, REF_FRAMES frames of mp4v."""
    import cv2

    h, w = portrait.shape[:2]
    frames = []
    for i in range(REF_FRAMES):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 3.0 * i, 1.0)
        m[:, 2] += (4 * i, 2 * i)
        frames.append(cv2.warpAffine(portrait, m, (w, h), borderMode=cv2.BORDER_REPLICATE))
    return str(_write_video(tmp_path_factory.mktemp("ref") / "moving.mp4", frames))


def _with_options(monkeypatch, backend, **changes):
    import dataclasses

    monkeypatch.setattr(backend, "options", dataclasses.replace(backend.options, **changes))


def _speech(frames):
    return Audio(np.random.default_rng(2).uniform(-0.3, 0.3, frames * 640).astype(np.float32), 16000)


def test_reference_video_coefficients(backend, avatar, moving_video):
    video = backend.reference_coefficients(moving_video)
    assert video.shape == (REF_FRAMES, 73) and video.dtype == np.float32 and np.isfinite(video).all()
    assert backend.reference_coefficients(moving_video) is video  # cached per file
    # every frame is its own measurement: the head turns, so the poses differ from frame to frame
    assert all(np.abs(video[i, 64:70] - video[i - 1, 64:70]).max() > 1e-4 for i in range(1, REF_FRAMES))
    # the first frame is the portrait itself, through the same crop and 3DMM path as `prepare`
    # (only the video codec in between)
    assert np.abs(video[0, :70] - avatar.coeffs[:70]).max() < np.abs(video[-1, :70] - avatar.coeffs[:70]).max()


@pytest.mark.parametrize("frames", [12, 3])  # longer than the video (looped), shorter (cut)
def test_ref_pose_adds_the_videos_motion_to_the_predicted_pose(backend, avatar, moving_video, monkeypatch,
                                                               frames):
    audio = _speech(frames)
    predicted = backend.coefficients(avatar, audio, frames)
    _with_options(monkeypatch, backend, ref_pose=moving_video)
    driven = backend.coefficients(avatar, audio, frames)
    video = backend.reference_coefficients(moving_video)[:, 64:70]

    # upstream using_refpose: pose[t] = predicted[t] + video[t mod n] - video[0]
    looped = video[np.arange(frames) % REF_FRAMES]
    np.testing.assert_allclose(driven[:, 64:70] - predicted[:, 64:70], looped - video[:1], atol=1e-5)
    np.testing.assert_array_equal(driven[:, :64], predicted[:, :64])  # the expression is the audio's
    assert np.abs(driven[:, 64:70] - predicted[:, 64:70]).max() > 1e-3
    np.testing.assert_allclose(driven[::REF_FRAMES, 64:70], predicted[::REF_FRAMES, 64:70], atol=1e-6)

    _with_options(monkeypatch, backend, ref_pose=moving_video, still=True)  # still keeps the portrait's pose
    still = backend.coefficients(avatar, audio, frames)
    np.testing.assert_array_equal(still[:, 64:70], np.repeat(avatar.coeffs[None, 64:70], frames, axis=0))


def test_ref_eyeblink_feeds_the_videos_expression_without_random_blinks(backend, avatar, moving_video,
                                                                        monkeypatch):
    import THG.sadtalker.audio2exp as audio2exp

    seen = []
    real = audio2exp.predict_expression

    def spy(net, mels, ref, ratio, *args, **kwargs):
        seen.append((ref[0].cpu().numpy().copy(), ratio[0, :, 0].cpu().numpy().copy()))
        return real(net, mels, ref, ratio, *args, **kwargs)

    monkeypatch.setattr(audio2exp, "predict_expression", spy)
    frames = 30  # long enough for a random blink (seed 0: frames 14-18)
    audio = _speech(frames)
    plain = backend.coefficients(avatar, audio, frames)
    _with_options(monkeypatch, backend, ref_eyeblink=moving_video)
    driven = backend.coefficients(avatar, audio, frames)
    video = backend.reference_coefficients(moving_video)

    (ref0, ratio0), (ref1, ratio1) = seen
    assert ratio0.max() == 1.0 and not ratio1.any()  # the random blinks are gone
    np.testing.assert_array_equal(ref0[:, :64], np.repeat(avatar.coeffs[None, :64], frames, axis=0))
    np.testing.assert_array_equal(ref1[:, :64], video[np.arange(frames) % REF_FRAMES, :64])  # looped video
    np.testing.assert_array_equal(ref1[:, 64:70], ref0[:, 64:70])  # the portrait's pose stays the reference
    assert np.abs(driven[:, :64] - plain[:, :64]).max() > 1e-3
    np.testing.assert_array_equal(driven[:, 64:70], plain[:, 64:70])  # the head pose is not touched


def test_reference_video_without_a_face(backend, avatar, tmp_path, monkeypatch):
    blank = _write_video(tmp_path / "blank.mp4", [np.full((120, 160, 3), v, np.uint8) for v in (100, 120, 140)])
    _with_options(monkeypatch, backend, ref_pose=str(blank))
    with pytest.raises(BadInputError, match=f"no face found in the first frame of the reference video .*{blank.name}"):
        backend.coefficients(avatar, _speech(3), 3)


@pytest.mark.parametrize("what", ["garbage", "missing"])
def test_unreadable_reference_video(backend, avatar, tmp_path, monkeypatch, what):
    path = tmp_path / "clip.mp4"
    if what == "garbage":
        path.write_text("not a video")
    _with_options(monkeypatch, backend, ref_eyeblink=str(path))
    with pytest.raises(BadInputError, match="cannot read the reference video .*clip.mp4"):
        backend.coefficients(avatar, _speech(3), 3)
