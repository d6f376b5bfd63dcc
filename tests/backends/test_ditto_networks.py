"""Ditto's networks against the original implementation's outputs on seeded weights.

The weights are the seeded published files (``tests/helpers``: every ``ditto/`` manifest through
``shared/reference/seeded.py``, in the published containers) read back through ``THG.ditto.loaders``,
so keys, prefixes (``module.`` in the stitching file, ``model_state_dict`` in the LMDM's) and strict
loading are checked with the maths. The reference outputs in ``tests/data/ditto`` come from the
original classes (antgroup/ditto-talkinghead e9191cf6) on the same files; see its README.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app_modules.errors import TalkerError
from THG.ditto.lmdm import DDIMSampler, cosine_alphas_cumprod
from THG.ditto.loaders import FILES, load_all, load_network

DATA = Path(__file__).resolve().parents[1] / "data" / "ditto"
MANIFESTS = {"appearance": "ditto_appearance_extractor", "motion": "ditto_motion_extractor",
             "warp": "ditto_warp_network", "decoder": "ditto_decoder", "stitch": "ditto_stitch_network",
             "lmdm": "ditto_lmdm_v0.4_hubert"}

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def nets(ditto_root):
    return load_all(ditto_root / "ditto" / "ditto_pytorch" / "models")


def _close(name, mine, ref, atol, rtol=1e-4):
    mine = mine.detach().numpy() if isinstance(mine, torch.Tensor) else np.asarray(mine)
    assert mine.shape == ref.shape, f"{name}: shape {mine.shape} != {ref.shape}"
    diff = np.abs(mine - ref).max()
    assert np.allclose(mine, ref, atol=atol, rtol=rtol), f"{name}: max |diff| {diff:.3g}"


@pytest.fixture(scope="module")
def ref():
    return dict(np.load(DATA / "ditto_networks.npz"))


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_state_dict_matches_the_manifest(reference_dir, name):
    manifest = json.loads((reference_dir / "ditto" / f"{MANIFESTS[name]}.json").read_text())["state_dict"]
    own = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in FILES[name][1]().state_dict().items()}
    assert own == {k: (v["shape"], v["dtype"]) for k, v in manifest.items()}


def test_lmdm_schedule_is_the_wrappers(reference_dir):
    buffers = json.loads((reference_dir / "ditto" / "ditto_lmdm_wrapper_buffers.json").read_text())["state_dict"]
    lmdm = dict(np.load(DATA / "ditto_lmdm.npz"))
    sampler = DDIMSampler(FILES["lmdm"][1](), 10)
    ours = {"alphas_cumprod": cosine_alphas_cumprod(), "sqrt_recipm1_alphas_cumprod": sampler.sqrt_recipm1,
            "sqrt_recip1m_alphas_cumprod": sampler.sqrt_recip1m}
    for key, mine in ours.items():
        assert list(mine.shape) == buffers[key]["shape"]
        _close(key, mine, lmdm[key], 0, 1e-6)
    assert sampler.pairs == [(999 - 100 * i, 899 - 100 * i) for i in range(10)]  # io_shapes_ditto_musetalk.json
    assert DDIMSampler(FILES["lmdm"][1](), 50).pairs[:2] == [(999, 979), (979, 959)]


def test_appearance_extractor(nets, ref):
    with torch.no_grad():
        _close("f_s", nets["appearance"](torch.from_numpy(ref["app_x"])), ref["app_out"], 1e-5)


def test_motion_extractor(nets, ref):
    with torch.no_grad():
        out = nets["motion"](torch.from_numpy(ref["me_x"]))
    for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp"):
        _close(k, out[k], ref[f"me_{k}"], 1e-5)


def test_warp_network_then_decoder(nets, ref):
    with torch.no_grad():
        feature = nets["appearance"](torch.from_numpy(ref["warp_img"]))
        _close("feature", feature[:, :, ::4, ::4, ::4], ref["warp_feature_s4"], 1e-5)
        warped = nets["warp"](feature, torch.from_numpy(ref["warp_kp_s"]), torch.from_numpy(ref["warp_kp_d"]))
        _close("warped", warped[:, ::2], ref["warp_out_c2"], 1e-5)
        _close("decoded", nets["decoder"](warped[:, :, 8:24, 8:24]), ref["dec_out"], 1e-5)


def test_stitching_network(nets, ref):
    with torch.no_grad():
        out = nets["stitch"](torch.from_numpy(ref["st_kp_s"]), torch.from_numpy(ref["st_kp_d"]))
    _close("stitched", out, ref["st_out"], 1e-5)


def test_lmdm_guided_prediction_and_ddim(nets):
    ref = dict(np.load(DATA / "ditto_lmdm.npz"))
    x, cond_frame, cond = (torch.from_numpy(ref[k]) for k in ("x", "cond_frame", "cond"))
    sampler = DDIMSampler(nets["lmdm"], 3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for t in (999, 499):  # outputs reach +-20: the tolerance is relative to that
            pred_noise, x_start = sampler.predict(x, cond_frame, cond, t)
            _close(f"pred_noise t={t}", pred_noise, ref[f"pred_noise_t{t}"], 2e-4)
            _close(f"x_start t={t}", x_start, ref[f"x_start_t{t}"], 2e-4)
        # same seed, same draws as the original under torch.manual_seed(0)
        _close("ddim 3 steps", sampler.sample(cond_frame, cond), ref["ddim3_seed0"], 2e-4)


# ---- loaders --------------------------------------------------------------------------------------
def test_loaders_reject_foreign_files(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "stitch.pth")
    with pytest.raises(TalkerError, match="no 'retarget_shoulder' entry"):
        load_network("stitch", tmp_path / "stitch.pth")
    torch.save({"state_dict": {}}, tmp_path / "lmdm.pth")
    with pytest.raises(TalkerError, match="no 'model_state_dict' entry"):
        load_network("lmdm", tmp_path / "lmdm.pth")
    torch.save({"first.conv.weight": torch.zeros(64, 3, 5, 5)}, tmp_path / "app.pth")
    with pytest.raises(TalkerError, match="missing.*wrong shape.*download ditto"):
        load_network("appearance", tmp_path / "app.pth")
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(TalkerError, match="cannot read the Ditto decoder file .*cut.pth"):
        load_network("decoder", tmp_path / "cut.pth")


def test_stitching_file_keys_carry_the_module_prefix(ditto_root):
    ckpt = torch.load(ditto_root / "ditto" / "ditto_pytorch" / "models" / "stitch_network.pth", weights_only=True)
    assert all(k.startswith("module.") for k in ckpt["retarget_shoulder"])
    assert {"retarget_mouth", "retarget_eye"} <= set(ckpt)  # the entries the loader must not take
