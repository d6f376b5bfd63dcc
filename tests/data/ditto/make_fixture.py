"""Makes the Ditto reference data in this folder by running the ORIGINAL implementation.

Not run by the tests (they only read what it wrote). Run once, by hand, at development time, with a
checkout of antgroup/ditto-talkinghead at commit e9191cf6 OUTSIDE this repository and einops on the
path (the original's LMDM imports it; nothing else here needs it):

    git clone https://github.com/antgroup/ditto-talkinghead /tmp/scratch-ditto/orig
    git -C /tmp/scratch-ditto/orig checkout e9191cf6
    pip install --target /tmp/scratch-ditto/site einops
    PYTHONPATH=/tmp/scratch-ditto/site .venv/bin/python tests/data/ditto/make_fixture.py /tmp/scratch-ditto/orig

The original's modules are imported from that checkout unchanged. Three modules it imports but these
runs never call are replaced by stubs: ``core.utils.blend`` (a Cython extension, built at import),
``imageio`` and ``skimage.transform`` (video I/O and the InsightFace alignment). The LMDM wrapper built
through ``load_model`` ends up with ``device='cuda'`` whatever it is given; it is set to ``'cpu'``.

Weights: ``tests/helpers/seeded_checkpoints.write_ditto`` writes every network's seeded weights
(``../shared/reference/seeded.py`` on the ``ditto/`` manifests) in the published containers, and the
original classes read them back with their own ``load_model``. See README.md for what each array is.
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SHARED = Path(os.environ.get("TALKER_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))

from tests.helpers.ditto_files import blink_template, canonical_template, write_tiny_hubert  # noqa: E402
from tests.helpers.seeded_checkpoints import write_ditto  # noqa: E402


def _stub_unused_modules() -> None:
    blend = types.ModuleType("core.utils.blend")
    blend.blend_images_cy = None  # PutBack (Cython) is never called: PutBackNumpy is used instead
    sys.modules["core.utils.blend"] = blend
    sys.modules.setdefault("imageio", types.ModuleType("imageio"))
    skimage = types.ModuleType("skimage")
    skimage.transform = types.ModuleType("skimage.transform")
    sys.modules.setdefault("skimage", skimage)
    sys.modules.setdefault("skimage.transform", skimage.transform)


ONLINE_FRAMES = 43


def networks(models: Path) -> dict[str, np.ndarray]:
    from core.models.modules import (
        AppearanceFeatureExtractor,
        MotionExtractor,
        SPADEDecoder,
        StitchingNetwork,
        WarpingNetwork,
    )

    app = AppearanceFeatureExtractor().load_model(str(models / "appearance_extractor.pth"))
    me = MotionExtractor().load_model(str(models / "motion_extractor.pth"))
    warp = WarpingNetwork().load_model(str(models / "warp_network.pth"))
    dec = SPADEDecoder().load_model(str(models / "decoder.pth"))
    st = StitchingNetwork().load_model(str(models / "stitch_network.pth"))
    rng = np.random.default_rng(1)
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        x = rng.uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
        out["app_x"], out["app_out"] = x, app(torch.from_numpy(x)).numpy()
        x = rng.uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
        out["me_x"] = x
        for name, v in zip(("pitch", "yaw", "roll", "t", "exp", "scale", "kp"), me(torch.from_numpy(x)), strict=True):
            out[f"me_{name}"] = v.numpy()
        img = rng.uniform(0, 1, (1, 3, 128, 128)).astype(np.float32)
        feature = app(torch.from_numpy(img))
        kp_s = (0.4 * rng.standard_normal((1, 21, 3))).clip(-0.9, 0.9).astype(np.float32)
        kp_d = (kp_s + 0.05 * rng.standard_normal((1, 21, 3))).astype(np.float32)
        warped = warp(feature, torch.from_numpy(kp_s), torch.from_numpy(kp_d))
        out.update(warp_img=img, warp_feature_s4=feature[:, :, ::4, ::4, ::4].numpy(), warp_kp_s=kp_s,
                   warp_kp_d=kp_d, warp_out_c2=warped[:, ::2].numpy())
        crop = warped[:, :, 8:24, 8:24].contiguous()  # the decoder has no pooling: 16x16 -> 128x128
        out["dec_out"] = dec(crop).numpy()
        kp_s = (0.4 * rng.standard_normal((1, 21, 3))).astype(np.float32)
        kp_d = (kp_s + 0.05 * rng.standard_normal((1, 21, 3))).astype(np.float32)
        out.update(st_kp_s=kp_s, st_kp_d=kp_d, st_out=st(torch.from_numpy(kp_s), torch.from_numpy(kp_d)).numpy())
    return out


def lmdm(models: Path) -> dict[str, np.ndarray]:
    from core.models.lmdm import LMDM

    wrapper = LMDM(str(models / "lmdm_v0.4_hubert.pth"), device="cpu", motion_feat_dim=265,
                   audio_feat_dim=1103, seq_frames=80)
    net = wrapper.model
    net.device = "cpu"
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 80, 265)).astype(np.float32)
    cond_frame = (0.5 * rng.standard_normal((1, 265))).astype(np.float32)
    cond = (0.5 * rng.standard_normal((1, 80, 1103))).astype(np.float32)
    out = {"x": x, "cond_frame": cond_frame, "cond": cond,
           "alphas_cumprod": net.alphas_cumprod.numpy(),
           "sqrt_recipm1_alphas_cumprod": net.sqrt_recipm1_alphas_cumprod.numpy(),
           "sqrt_recip1m_alphas_cumprod": net.sqrt_recip1m_alphas_cumprod.numpy()}
    with torch.no_grad():
        for t in (999, 499):
            pred_noise, x_start = net(torch.from_numpy(x), torch.from_numpy(cond_frame), torch.from_numpy(cond),
                                      torch.tensor([t]))
            out[f"pred_noise_t{t}"], out[f"x_start_t{t}"] = pred_noise.numpy(), x_start.numpy()
        torch.manual_seed(0)
        out["ddim3_seed0"] = wrapper(cond_frame, cond, 3)
    return out


def _tiny_hubert_features(hubert_path: Path, wav: np.ndarray) -> np.ndarray:
    from core.atomic_components.wav2feat import Wav2Feat

    w2f = Wav2Feat({"model_path": str(hubert_path), "device": "cpu"}, "hubert")
    return w2f.wav2feat(wav)


def _source_info(rng: np.random.Generator) -> dict:
    info = canonical_template(rng)
    info["x_s_info_lst"][0]["scale"] = np.array([[1.2]], np.float32)
    info["is_image_flag"] = True
    return info


def _lmdm_cfg(models: Path) -> dict:
    return {"model_path": str(models / "lmdm_v0.4_hubert.pth"), "device": "cpu", "motion_feat_dim": 265,
            "audio_feat_dim": 1103, "seq_frames": 80}


def motion(models: Path, hubert_path: Path) -> dict[str, np.ndarray]:
    """features -> conditions -> LMDM windows -> stitching -> keypoints, offline and online."""
    from core.atomic_components.audio2motion import Audio2Motion
    from core.atomic_components.condition_handler import ConditionHandler
    from core.atomic_components.motion_stitch import MotionStitch
    from core.atomic_components.wav2feat import Wav2Feat

    rng = np.random.default_rng(3)
    sr = 16000
    t = np.arange(int(3.6 * sr)) / sr
    wav = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t))
           + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    w2f = Wav2Feat({"model_path": str(hubert_path), "device": "cpu"}, "hubert")
    feat = w2f.wav2feat(wav)  # (90, 1024)
    chunk = w2f(np.concatenate([np.zeros(2000, np.float32), wav[:4480]]), chunksize=(3, 5, 2))
    source = _source_info(rng)
    template = canonical_template(rng)
    blink = blink_template(8)
    clip = np.stack([np.full(265, -3.0, np.float32), np.full(265, 3.0, np.float32)])
    clip[:, 202:] *= 0.05
    out = {"wav": wav, "feat": feat, "feat_chunk0": chunk, "blink": blink, "clip": clip,
           **{f"src_{k}": v for k, v in source["x_s_info_lst"][0].items()},
           "src_eye_open": source["eye_open_lst"][0], "src_eye_ball": source["eye_ball_lst"][0],
           **{f"tpl_{k}": v for k, v in template["x_s_info_lst"][0].items()},
           "tpl_eye_open": template["eye_open_lst"][0], "tpl_eye_ball": template["eye_ball_lst"][0]}
    x_s_info = source["x_s_info_lst"][0]

    # offline: the whole feature sequence at once (stream_pipeline_offline._audio2motion_offline),
    # the photo's own conditions (no template), overlap 10, 3 DDIM steps, blinks every 20 frames
    ch = ConditionHandler(use_emo=True, use_sc=True, use_eye_open=True, use_eye_ball=True, seq_frames=80)
    ch.setup(source, 4, eye_f0_mode=False, ch_info=None)
    a2m = Audio2Motion(_lmdm_cfg(models))
    a2m.lmdm.model.device = "cpu"
    torch.manual_seed(10)  # the stitching network is built after the windows: nothing else draws
    a2m.setup(ch.x_s_info_0, overlap_v2=10, fix_kp_cond=0, sampling_timesteps=3, online_mode=False,
              v_min_max_for_clip=clip, smo_k_d=3)
    cond_all = ch(feat, 0)
    res, idx = None, 0
    while idx < len(cond_all):
        c = cond_all[idx:idx + 80][None]
        if c.shape[1] < 80:
            c = np.concatenate([c, np.stack([c[:, -1]] * (80 - c.shape[1]), 1)], 1)
        res = a2m(c, res)
        idx += a2m.valid_clip_len
    res = a2m._smo(res[:, :len(cond_all)], 0, len(cond_all))
    out["off_res"] = res[0]
    infos = a2m.cvt_fmt(res)
    stitch = MotionStitch({"model_path": str(models / "stitch_network.pth"), "device": "cpu"})
    stitch.setup(N_d=len(infos), use_d_keys=None, relative_d=True, drive_eye=None, delta_eye_arr=blink,
                 delta_eye_open_n=20, fade_type="", flag_stitching=True, is_image_flag=True, x_s_info=x_s_info,
                 d0=None, ch_info=None, overall_ctrl_info={})
    pairs = [stitch(x_s_info, info) for info in infos]
    out["off_x_s"], out["off_x_d"] = pairs[0][0], np.concatenate([p[1] for p in pairs])
    out["off_blink_idx"] = np.array(stitch.delta_eye_idx_list, np.int64)

    # online: the streaming worker (stream_pipeline_online._audio2motion_worker) fed 5 frames at a time,
    # the first ONLINE_FRAMES frames, with a canonical template (ch_info), overlap 70, 1 DDIM step (one
    # guided prediction per window: the windows are what this checks), no blinks
    import stream_pipeline_online as online

    ch = ConditionHandler(use_emo=True, use_sc=True, use_eye_open=True, use_eye_ball=True, seq_frames=80)
    ch.setup(source, 4, eye_f0_mode=False, ch_info=template)
    a2m = Audio2Motion(_lmdm_cfg(models))
    a2m.lmdm.model.device = "cpu"
    stitch = MotionStitch({"model_path": str(models / "stitch_network.pth"), "device": "cpu"})
    torch.manual_seed(11)  # after every network is built: their initialisers draw from the same generator
    a2m.setup(ch.x_s_info_0, overlap_v2=70, fix_kp_cond=0, sampling_timesteps=1, online_mode=True,
              v_min_max_for_clip=None, smo_k_d=3)
    stitch.setup(N_d=-1, use_d_keys=None, relative_d=True, drive_eye=None, delta_eye_arr=None,
                 delta_eye_open_n=-1, fade_type="", flag_stitching=True, is_image_flag=True, x_s_info=x_s_info,
                 d0=None, ch_info=template, overall_ctrl_info={})
    sdk = types.SimpleNamespace(
        stop_event=threading.Event(), audio2motion_queue=queue.Queue(), motion_stitch_queue=queue.Queue(),
        audio2motion=a2m, condition_handler=ch, motion_stitch=stitch, wav2feat=w2f, online_mode=True,
        source_info_frames=1, _get_ctrl_info=lambda fid: {})
    sdk.audio_feat = w2f.wav2feat(np.zeros(70 * 640, np.float32), sr=16000)
    sdk.cond_idx_start = -len(sdk.audio_feat)
    for i in range(0, ONLINE_FRAMES, 5):
        sdk.audio2motion_queue.put(feat[i:min(i + 5, ONLINE_FRAMES)])
    sdk.audio2motion_queue.put(None)
    online.StreamSDK._audio2motion_worker(sdk)
    emitted = []
    while (item := sdk.motion_stitch_queue.get()) is not None:
        emitted.append(item[1])
    from core.atomic_components.audio2motion import _cvt_LP_motion_info

    out["on_d0"] = _cvt_LP_motion_info(stitch.d0, "dic2arr")
    out["on_motion"] = np.stack([_cvt_LP_motion_info(e, "dic2arr") for e in emitted])
    pairs = [stitch(x_s_info, dict(e)) for e in emitted]
    out["on_x_s"], out["on_x_d"] = pairs[0][0], np.concatenate([p[1] for p in pairs])
    return out


def geometry() -> dict[str, np.ndarray]:
    """The crop transform, the paste-back mask and blend, and the eye measures from the face mesh."""
    import cv2
    import matplotlib
    import mediapipe as mp
    from core.atomic_components.putback import PutBackNumpy
    from core.utils.crop import crop_image
    from core.utils.eye_info import EyeAttrUtilsByMP
    from core.utils.get_mask import get_mask

    rng = np.random.default_rng(4)
    # 203 points with a tilted face: the original reads eyes from 0/6/12/18 and 24/30/36/42, the lips
    # from 48 and 66, and the box from all of them
    pts = rng.uniform(-1, 1, (203, 2)) * [40, 55]
    pts[[0, 6, 12, 18]] = [-20, -15] + rng.normal(0, 2, (4, 2))
    pts[[24, 30, 36, 42]] = [20, -11] + rng.normal(0, 2, (4, 2))
    pts[[48, 66]] = [[2, 28], [4, 32]]
    pts = (pts + [110, 95]).astype(np.float32)
    img = rng.integers(0, 256, (200, 230, 3), dtype=np.uint8)
    out = {"crop_pts": pts, "crop_img": img}
    for dsize in (512, 64):
        r = crop_image(img, pts, dsize=dsize, scale=2.3, vx_ratio=0, vy_ratio=-0.125, flag_do_rot=True,
                       pt_crop_flag=False)
        out[f"crop{dsize}_M_o2c"], out[f"crop{dsize}_M_c2o"] = r["M_o2c"], r["M_c2o"]
        if dsize == 64:
            out["crop64_img"] = r["img_crop"]
    out["mask_64x48"] = get_mask(64, 48, 0.9, 0.9)
    put = PutBackNumpy()
    out["mask_512_row256"], out["mask_512_col256"] = put.mask_ori_float[256, :, 0], put.mask_ori_float[:, 256, 0]
    put.mask_ori_float = np.concatenate([get_mask(64, 64, 0.9, 0.9)] * 3, 2)
    render = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    out["putback_render"] = render
    out["putback_out"] = put(img, render, out["crop64_M_c2o"])

    image = cv2.cvtColor(cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")),
                         cv2.COLOR_BGR2RGB)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as fm:
        lm = fm.process(image).multi_face_landmarks[0].landmark
    lmk = np.array([[[p.x, p.y, p.z] for p in lm]], np.float32)
    attr = EyeAttrUtilsByMP(lmk)
    out.update(eye_lmk478=lmk, eye_open=attr.LR_open().reshape(-1, 2), eye_ball=attr.LR_ball_move().reshape(-1, 6))
    return out


def main(orig: str, parts: list[str]) -> None:
    """``parts``: which files to remake (networks, lmdm, motion, geometry); all when empty."""
    _stub_unused_modules()
    sys.path.insert(0, str(Path(orig).resolve()))
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        models = write_ditto(SHARED / "reference", Path(tmp) / "models")
        hubert = write_tiny_hubert(Path(tmp) / "tiny_hubert.onnx")
        makers = {"networks": lambda: networks(models), "lmdm": lambda: lmdm(models),
                  "motion": lambda: motion(models, hubert), "geometry": geometry}
        for name, make in makers.items():
            if not parts or name in parts:
                np.savez(HERE / f"ditto_{name}.npz", **make())
    for f in sorted(HERE.glob("*.npz")):
        print(f.name, f.stat().st_size)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
