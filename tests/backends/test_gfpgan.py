"""GFPGAN face enhancer: the network against the original architecture code, the checkpoint loader,
and enhancement of a real portrait.

``tests/data/gfpgan`` holds what ``make_fixture.py`` there computed with the original gfpgan 1.3.8
arch files (basicsr stubbed): the state-dict manifests at the published v1.4 configuration and at
out_size 64, and outputs on seeded weights (``shared/reference/seeded.py``). The 512 weights are
written in the published container (``{"params_ema": ...}``) and read back through the real loader,
so names, shapes and strict loading are checked along with the maths. Enhancement tests use a small
random network: the pipeline around it does not depend on the size.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app_modules.checkpoints import CheckpointManager
from app_modules.errors import BackendUnavailableError, BadInputError, MissingWeightsError, TalkerError
from THG.enhancer import gfpgan_arch, maybe_enhancer
from THG.enhancer.gfpgan import GFPGANEnhancer, load_gfpgan
from THG.enhancer.gfpgan_arch import GFPGANv1Clean

DATA = Path(__file__).resolve().parent.parent / "data" / "gfpgan"
SMALL = {"out_size": 64, "narrow": 0.25}  # the fixture's small configuration
FACE_BOX = (115, 95, 415, 395)  # Grace Hopper's face in the 512x600 portrait (x1, y1, x2, y2)


def _manifest(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def _seeded(reference_dir, manifest: dict) -> dict:
    spec = importlib.util.spec_from_file_location("talker_seeded", reference_dir / "seeded.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.seeded_state_dict(manifest)


def _nchw(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.fixture(scope="module")
def fixture():
    return dict(np.load(DATA / "gfpgan_forward.npz"))


@pytest.fixture(scope="module")
def checkpoint_512(reference_dir, tmp_path_factory) -> Path:
    """Seeded weights at the published configuration, saved the way GFPGANv1.4.pth is."""
    path = tmp_path_factory.mktemp("gfpgan") / "GFPGANv1.4.pth"
    torch.save({"params_ema": _seeded(reference_dir, _manifest("gfpgan_v1.4.json"))}, path)
    return path


@pytest.fixture(scope="module")
def small_state(reference_dir) -> dict:
    return _seeded(reference_dir, _manifest("gfpgan_small.json"))


@pytest.fixture(scope="module")
def random_enhancer_net() -> GFPGANv1Clean:
    torch.manual_seed(0)
    return GFPGANv1Clean(out_size=64, narrow=0.25).eval()  # the size is all the pipeline sees


def _enhancer(net: GFPGANv1Clean, **options) -> GFPGANEnhancer:
    return GFPGANEnhancer(GFPGANEnhancer.Options(device="cpu", **options), network=net)


# ------------------------------------------------------------------------------ names and shapes

@pytest.mark.parametrize("config, manifest", [({}, "gfpgan_v1.4.json"), (SMALL, "gfpgan_small.json")])
def test_state_dict_names_and_shapes_match_the_original(config, manifest):
    ref = _manifest(manifest)
    mine = {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in GFPGANv1Clean(**config).state_dict().items()}
    assert list(mine) == list(ref)  # same names, same order
    assert mine == ref
    if not config:
        assert len(ref) == 285 and ref["stylegan_decoder.noises.noise14"]["shape"] == [1, 1, 512, 512]


# ------------------------------------------------------------------------------ maths

def test_published_config_loads_from_the_container_and_matches_the_original(checkpoint_512, fixture):
    enhancer = GFPGANEnhancer(GFPGANEnhancer.Options(checkpoint=str(checkpoint_512), device="cpu"))
    net = enhancer.network
    assert enhancer.face_size == 512
    latents = []
    hook = net.final_linear.register_forward_hook(lambda m, i, o: latents.append(o))
    with torch.no_grad():
        out = net(_nchw(fixture["input"])).numpy()
    hook.remove()
    np.testing.assert_allclose(latents[0].view(1, 16, 512).numpy(), fixture["latent_512"], atol=1e-4, rtol=1e-5)
    # outputs reach |15| with these weights: 1e-4 absolute plus fp32 rounding relative to the value
    np.testing.assert_allclose(out[:, :, ::4, ::4], fixture["output_512_stride4"], atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("per_sample", [False, True], ids=["scaled-activations", "per-sample-kernels"])
def test_both_modulated_conv_forms_match_the_original_in_a_batch(per_sample, small_state, fixture, monkeypatch):
    monkeypatch.setattr(gfpgan_arch, "PER_SAMPLE_WEIGHTS", per_sample)
    net = GFPGANv1Clean(**SMALL).eval()
    net.load_state_dict(small_state, strict=True)
    x = _nchw(fixture["input_64"])
    batch = torch.cat([x, x.flip(-1)])  # a second, different face: the first must come out as alone
    with torch.no_grad():
        out = net(batch).numpy()
    np.testing.assert_allclose(out[:1], fixture["output_64"], atol=1e-4, rtol=0)
    assert np.abs(out[1] - out[0]).max() > 1e-2


# ------------------------------------------------------------------------------ loader

def test_loader_prefers_params_ema_and_accepts_params(small_state, tmp_path):
    other = {k: v + 1 for k, v in small_state.items()}
    both = tmp_path / "both.pth"
    torch.save({"params": other, "params_ema": small_state}, both)
    net = load_gfpgan(both, **SMALL)
    torch.testing.assert_close(net.final_linear.weight, small_state["final_linear.weight"], rtol=0, atol=0)
    assert not net.training

    only = tmp_path / "params.pth"
    torch.save({"params": other}, only)
    torch.testing.assert_close(load_gfpgan(only, **SMALL).final_linear.weight, other["final_linear.weight"])


def test_loader_errors_say_what_is_wrong(small_state, tmp_path):
    with pytest.raises(MissingWeightsError, match="download gfpgan"):
        load_gfpgan(tmp_path / "GFPGANv1.4.pth")

    html = tmp_path / "page.pth"
    html.write_text("<html>rate limited</html>")
    with pytest.raises(TalkerError, match="cannot read the GFPGAN checkpoint"):
        load_gfpgan(html)

    no_tensors = tmp_path / "list.pth"
    torch.save([1, 2, 3], no_tensors)
    with pytest.raises(TalkerError, match="not a GFPGAN checkpoint"):
        load_gfpgan(no_tensors)

    renamed = tmp_path / "renamed.pth"  # e.g. GFPGANv1.pth: other layer names
    torch.save({"params_ema": {"module." + k: v for k, v in small_state.items()}}, renamed)
    with pytest.raises(TalkerError, match=r"not a GFPGAN v1.3/v1.4 .* 177 missing .* 177 unexpected"):
        load_gfpgan(renamed, **SMALL)

    small = tmp_path / "small.pth"  # the right names at the wrong size
    torch.save({"params_ema": small_state}, small)
    with pytest.raises(TalkerError, match="wrong shape"):
        load_gfpgan(small)


def test_missing_checkpoint_names_the_download_command(tmp_path):
    with pytest.raises(MissingWeightsError, match="download gfpgan"):
        GFPGANEnhancer(GFPGANEnhancer.Options(device="cpu"), CheckpointManager(tmp_path))
    with pytest.raises(MissingWeightsError, match="not found"):
        maybe_enhancer("gfpgan", CheckpointManager(tmp_path), checkpoint=str(tmp_path / "nope.pth"))


# ------------------------------------------------------------------------------ the hook for THG backends

def test_no_enhancer_imports_nothing_heavy():
    code = "import sys; from THG.enhancer import maybe_enhancer; assert maybe_enhancer('none') is None; " \
           "assert 'torch' not in sys.modules and 'cv2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], check=True)


def test_maybe_enhancer(checkpoint_512, tmp_path):
    mgr = CheckpointManager(tmp_path)
    for off in ("", "none", " None ", None):
        assert maybe_enhancer(off, mgr) is None
    with pytest.raises(BackendUnavailableError, match="valid enhancers = none, gfpgan"):
        maybe_enhancer("codeformer", mgr)
    with pytest.raises(TalkerError, match="unknown enhancer option.*strength.*valid options"):
        maybe_enhancer("gfpgan", mgr, strength=1)
    with pytest.raises(TalkerError, match="between 0 and 1"):
        maybe_enhancer("gfpgan", mgr, weight=1.5)

    (tmp_path / "gfpgan").mkdir()
    (tmp_path / "gfpgan" / "GFPGANv1.4.pth").symlink_to(checkpoint_512)  # the catalog's layout
    enhancer = maybe_enhancer("GFPGAN", mgr, device="cpu", weight=0.7)
    assert isinstance(enhancer, GFPGANEnhancer)
    assert enhancer.options.weight == 0.7 and enhancer.face_size == 512 and enhancer.device.type == "cpu"


# ------------------------------------------------------------------------------ enhancement

def test_enhance_faces_shape_dtype_and_blend(random_enhancer_net, portrait):
    import cv2

    x1, y1, x2, y2 = FACE_BOX
    face = cv2.resize(portrait[y1:y2, x1:x2], (64, 64), interpolation=cv2.INTER_AREA)
    faces = np.stack([face, face[:, ::-1]])
    full = _enhancer(random_enhancer_net, weight=1.0).enhance_faces(faces)
    half = _enhancer(random_enhancer_net, weight=0.5, batch_size=1).enhance_faces(faces)
    off = _enhancer(random_enhancer_net, weight=0.0).enhance_faces(faces)
    assert full.shape == half.shape == faces.shape and full.dtype == half.dtype == np.uint8
    assert np.abs(full.astype(int) - faces).mean() > 5  # random weights: clearly not the input
    # half is the average of the input and GFPGAN's face, up to rounding
    assert np.abs(half.astype(float) - (faces.astype(float) + full) / 2).max() <= 1.0
    np.testing.assert_array_equal(off, faces)
    # the stored noise makes it deterministic (no shimmer between video frames)
    np.testing.assert_array_equal(_enhancer(random_enhancer_net, weight=1.0).enhance_faces(faces[:1]), full[:1])
    with pytest.raises(BadInputError, match=r"\(N, 64, 64, 3\)"):
        _enhancer(random_enhancer_net).enhance_faces(faces[:, :32])


def test_enhance_pastes_into_the_box_only(random_enhancer_net, portrait):
    enhancer = _enhancer(random_enhancer_net, weight=1.0)
    out = enhancer.enhance(portrait, FACE_BOX)
    assert out.shape == portrait.shape and out.dtype == np.uint8
    x1, y1, x2, y2 = FACE_BOX
    diff = np.abs(out.astype(int) - portrait).sum(-1)
    assert diff[y1 + 40:y2 - 40, x1 + 40:x2 - 40].mean() > 5  # the face changed
    outside = np.ones(diff.shape, bool)
    outside[y1:y2, x1:x2] = False
    assert diff[outside].max() == 0  # nothing outside the (square) box did
    assert diff[y1, x1:x2].max() <= 3  # the feathered edge fades in
    assert not np.shares_memory(out, portrait)

    np.testing.assert_array_equal(_enhancer(random_enhancer_net, weight=0.0).enhance(portrait, FACE_BOX), portrait)


def test_enhance_many_batches_and_handles_boxes_past_the_edge(random_enhancer_net, portrait):
    enhancer = _enhancer(random_enhancer_net, weight=1.0, batch_size=2)
    corner = (-40, 450, 120, 640)  # reaches past the left and bottom edges
    many = enhancer.enhance_many([portrait, portrait, portrait], [FACE_BOX, corner, FACE_BOX], expand=1.2)
    np.testing.assert_array_equal(many[0], enhancer.enhance(portrait, FACE_BOX, expand=1.2))
    np.testing.assert_array_equal(many[0], many[2])
    assert many[1].shape == portrait.shape and np.abs(many[1].astype(int) - portrait)[500:, :80].mean() > 5
    for bad in [(10, 10, 10, 50), (600, 0, 700, 100), ("a", 1, 2, 3)]:
        with pytest.raises(BadInputError, match="face box"):
            enhancer.enhance(portrait, bad)
    with pytest.raises(BadInputError, match="RGB uint8"):
        enhancer.enhance(portrait.astype(np.float32), FACE_BOX)
