"""Makes the GFPGAN reference data in this folder from the ORIGINAL architecture code.

Not run by the tests (they only read what it wrote). Run once, by hand, at development time:

    pip download --no-deps gfpgan==1.3.8 -d /tmp/gfp && (cd /tmp/gfp && unzip -o -q gfpgan-1.3.8-py3-none-any.whl)
    python tests/data/gfpgan/make_fixture.py /tmp/gfp

``gfpgan`` cannot be imported here (it pulls in basicsr/facexlib, which need torchvision, which does
not load against the CPU torch). Only two of its files matter for the network, and they import
little: ``gfpgan/archs/stylegan2_clean_arch.py`` and ``gfpgan/archs/gfpganv1_clean_arch.py`` are
executed from the wheel unchanged, with two stub modules in place of basicsr:

* ``basicsr.utils.registry.ARCH_REGISTRY``: a ``register()`` decorator that returns the class as is;
* ``basicsr.archs.arch_util.default_init_weights``: a no-op. It only sets initial values, which are
  overwritten by the seeded weights below; it creates no parameters and is not used in ``forward``.

Nothing is copied from the wheel into this repository; only its outputs are stored:

* ``gfpgan_v1.4.json``: key -> {shape, dtype} of ``GFPGANv1Clean`` at the published v1.4
  configuration (the one ``GFPGANer(arch='clean', channel_multiplier=2)`` builds), in state-dict order.
* ``gfpgan_forward.npz``: with weights from ``../shared/reference/seeded.py`` applied to that manifest
  (the same generator the Wav2Lip/SadTalker fixtures use), fp32 on CPU, eval mode, stored noise maps
  (``randomize_noise=False``):
  - ``input``: (1, 512, 512, 3) uint8 RGB, Grace Hopper's face from matplotlib's sample data;
    the network sees ``input / 127.5 - 1`` (GFPGANer's normalisation), NCHW;
  - ``output_512_stride4``: the 512 output, every 4th row and column (full output is 3 MB);
  - ``latent_512``: the style codes (1, 16, 512) from ``final_linear``;
  - ``input_64``, ``output_64``: the same at out_size 64, narrow 0.25 (manifest ``gfpgan_small.json``), full
    output, for a fast check of every layer at a small size.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
SHARED = Path(os.environ.get("TALKER_SHARED", REPO.parent / "shared"))

PUBLISHED = dict(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                 num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
SMALL = dict(PUBLISHED, out_size=64, narrow=0.25)  # every layer kind, a small fraction of the work


def load_original(src: Path) -> types.ModuleType:
    """``gfpganv1_clean_arch`` from the unpacked wheel at ``src``, with basicsr stubbed."""
    registry = types.SimpleNamespace(register=lambda *a, **k: (lambda cls: cls))
    stubs = {
        "basicsr": types.ModuleType("basicsr"),
        "basicsr.utils": types.ModuleType("basicsr.utils"),
        "basicsr.utils.registry": types.ModuleType("basicsr.utils.registry"),
        "basicsr.archs": types.ModuleType("basicsr.archs"),
        "basicsr.archs.arch_util": types.ModuleType("basicsr.archs.arch_util"),
    }
    stubs["basicsr.utils.registry"].ARCH_REGISTRY = registry
    stubs["basicsr.archs.arch_util"].default_init_weights = lambda *a, **k: None
    sys.modules.update(stubs)
    # a bare package so that the relative import ``from .stylegan2_clean_arch import ...`` resolves
    # without running gfpgan/archs/__init__.py (which imports every arch and basicsr.utils.scandir)
    pkg = types.ModuleType("gfpgan_orig")
    pkg.__path__ = [str(src / "gfpgan" / "archs")]
    sys.modules["gfpgan_orig"] = pkg
    mods = {}
    for name in ("stylegan2_clean_arch", "gfpganv1_clean_arch"):
        spec = importlib.util.spec_from_file_location(f"gfpgan_orig.{name}", src / "gfpgan" / "archs" / f"{name}.py")
        mods[name] = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mods[name]
        spec.loader.exec_module(mods[name])
    return mods["gfpganv1_clean_arch"]


def manifest(model: torch.nn.Module) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in model.state_dict().items()}


def seeded(man: dict) -> dict:
    spec = importlib.util.spec_from_file_location("talker_seeded", SHARED / "reference" / "seeded.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.seeded_state_dict(man)


def face_crop(size: int) -> np.ndarray:
    """Grace Hopper's face, a fixed square box, resized to ``size`` (RGB uint8)."""
    import cv2
    import matplotlib

    img = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    crop = img[80:380, 110:410]  # 300x300 around the face in the 512x600 photo
    return cv2.cvtColor(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def run(model: torch.nn.Module, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = (torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1).contiguous()  # NCHW: the original .view()s
    latents = []
    hook = model.final_linear.register_forward_hook(lambda m, i, o: latents.append(o))
    with torch.no_grad():
        out, _ = model(x, return_rgb=False, randomize_noise=False)
    hook.remove()
    return out.numpy(), latents[0].view(1, -1, 512).numpy()


def main(src: Path) -> None:
    torch.manual_seed(0)
    arch = load_original(src)
    data = {}
    for tag, cfg, fname in (("512", PUBLISHED, "gfpgan_v1.4.json"), ("64", SMALL, "gfpgan_small.json")):
        model = arch.GFPGANv1Clean(**cfg).eval()
        man = manifest(model)
        (HERE / fname).write_text(json.dumps(man, indent=0))
        model.load_state_dict(seeded(man), strict=True)
        rgb = face_crop(cfg["out_size"])[None]
        out, latent = run(model, rgb)
        if tag == "512":
            data.update(input=rgb, output_512_stride4=out[:, :, ::4, ::4].copy(), latent_512=latent)
        else:
            data.update(input_64=rgb, output_64=out)
        print(tag, len(man), "tensors; output range", float(out.min()), float(out.max()))
    np.savez_compressed(HERE / "gfpgan_forward.npz", **data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
