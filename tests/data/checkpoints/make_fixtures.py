"""Writes the GPT-SoVITS checkpoint fixtures in this folder with the ORIGINAL saving code.

Not run by the tests (they only read what it wrote). Run once, by hand, outside the repository:

    python tests/data/checkpoints/make_fixtures.py /tmp/scratch-i21/RVC-Boss+GPT-SoVITS

where the argument is a checkout of RVC-Boss/GPT-SoVITS (48b1a01, 2026-08-18; only its .py/.json/.yaml
files are needed). Its ``GPT_SoVITS/utils.py`` and ``GPT_SoVITS/process_ckpt.py`` are imported from there
unchanged (both import fine on the CPU torch); nothing of it is copied into this repository.

* ``gptsovits_s2_savee.pth``: what SoVITS training writes for every saved epoch. The hyper-parameters are
  built the way the webui starts ``s2_train.py`` (``configs/s2.json`` with the webui's edits, written to a
  temporary json, then ``utils.get_hparams(stage=2)`` reads it from the command line), and
  ``process_ckpt.savee(ckpt, name, epoch, steps, hps)`` saves them: fp16 weights without ``enc_q``, the
  ``utils.HParams`` object itself under ``config``, an ``info`` string.
* ``gptsovits_s1_my_save.ckpt``: what GPT (s1) training writes per epoch: ``s1_train.my_model_ckpt`` builds
  an OrderedDict (fp16 weights with the Lightning ``model.`` prefix, the yaml config dict, ``info``) and
  saves it with ``process_ckpt.my_save``. Lightning is not importable here, so those three assignments are
  made by this script; ``my_save`` and the config (``s1longer-v2.yaml`` with the webui's edits, read with
  ``AR.utils.io.load_yaml_config``) are the original's.
* ``containers.json``: for each file, what the original's loader returns (``process_ckpt.load_sovits_new``
  for the SoVITS file, ``torch.load(weights_only=False)`` as ``change_gpt_weights`` does for the GPT file):
  every tensor's dtype, shape and values, the config as plain JSON, ``info``, and the pickle globals the
  file refers to (``pickletools`` over its ``data.pkl``).

The weights are small random tensors under real key names (the loader tests that need whole networks
write full-size files themselves, with the same container and the same pickle globals, which the tests
check against this file).
"""

from __future__ import annotations

import json
import os
import pickletools
import shutil
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def pickle_globals(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    found = set()
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            found.add(".".join(strings[-2:]))
    return sorted(found)


def plain(obj):
    if isinstance(obj, torch.Tensor):
        return {"dtype": str(obj.dtype), "shape": list(obj.shape), "values": obj.float().flatten().tolist()}
    if hasattr(obj, "items"):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def main(upstream: Path) -> None:
    sys.path[:0] = [str(upstream / "GPT_SoVITS"), str(upstream)]
    import process_ckpt
    import utils
    from AR.utils.io import load_yaml_config

    torch.manual_seed(21)
    out = {}
    work = Path(tempfile.mkdtemp(prefix="gsv-ckpt-"))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        # --- SoVITS (s2): the webui's edits to s2.json (open1Ba), then s2_train.py's get_hparams ---------------
        data = json.loads((upstream / "GPT_SoVITS/configs/s2.json").read_text())
        data["train"].update(batch_size=8, epochs=8, text_low_lr_rate=0.4,
                             pretrained_s2G="GPT_SoVITS/pretrained_models/gsv-v2final-pretrained/s2G2333k.pth",
                             pretrained_s2D="GPT_SoVITS/pretrained_models/gsv-v2final-pretrained/s2D2333k.pth",
                             if_save_latest=True, if_save_every_weights=True, save_every_epoch=4, gpu_numbers="0",
                             grad_ckpt=False, lora_rank="32")
        data["model"]["version"] = "v2"
        data["data"]["exp_dir"] = data["s2_ckpt_dir"] = "logs/probe"
        data["save_weight_dir"] = "SoVITS_weights_v2"
        data["name"] = "probe"
        data["version"] = "v2"
        Path("tmp_s2.json").write_text(json.dumps(data))
        os.makedirs("SoVITS_weights_v2")
        sys.argv = ["s2_train.py", "--config", "tmp_s2.json"]
        hps = utils.get_hparams(stage=2)
        ckpt = OrderedDict((k, torch.randn(*shape)) for k, shape in [
            ("enc_p.text_embedding.weight", (6, 4)), ("enc_p.ssl_proj.bias", (4,)),
            ("dec.ups.0.weight_g", (3, 1, 1)), ("dec.ups.0.weight_v", (3, 2, 5)),
            ("quantizer.vq.layers.0._codebook.embed", (5, 3)), ("enc_q.proj.weight", (2, 2, 1))])
        print(process_ckpt.savee(ckpt, "probe_e8_s96", 8, 96, hps))
        s2 = HERE / "gptsovits_s2_savee.pth"
        shutil.copy("SoVITS_weights_v2/probe_e8_s96.pth", s2)
        loaded = process_ckpt.load_sovits_new(str(s2))
        out[s2.name] = {"writer": "process_ckpt.savee", "reader": "process_ckpt.load_sovits_new",
                        "top_keys": list(loaded), "config_type": f"{type(loaded['config']).__module__}."
                        f"{type(loaded['config']).__qualname__}", "weight": plain(loaded["weight"]),
                        "config": plain(loaded["config"]), "info": loaded["info"], "globals": pickle_globals(s2)}

        # --- GPT (s1): the webui's edits to s1longer-v2.yaml (open1Bb), my_model_ckpt's container, my_save ----
        import yaml

        cfg = yaml.load((upstream / "GPT_SoVITS/configs/s1longer-v2.yaml").read_text(), Loader=yaml.FullLoader)
        cfg["train"].update(batch_size=8, epochs=15, save_every_n_epoch=5, if_save_every_weights=True,
                            if_save_latest=True, if_dpo=False, half_weights_save_dir="GPT_weights_v2",
                            exp_name="probe")
        cfg["pretrained_s1"] = ("GPT_SoVITS/pretrained_models/gsv-v2final-pretrained/"
                                "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt")
        cfg["train_semantic_path"] = "logs/probe/6-name2semantic.tsv"
        cfg["train_phoneme_path"] = "logs/probe/2-name2text.txt"
        cfg["output_dir"] = "logs/probe/logs_s1_v2"
        Path("tmp_s1.yaml").write_text(yaml.dump(cfg, default_flow_style=False))
        config = load_yaml_config("tmp_s1.yaml")
        os.makedirs("GPT_weights_v2")
        state = OrderedDict((k, torch.randn(*shape)) for k, shape in [
            ("model.bert_proj.weight", (4, 6)), ("model.ar_text_position.alpha", (1,)),
            ("model.h.layers.0.self_attn.in_proj_weight", (6, 4)), ("model.ar_predict_layer.weight", (5, 4))])
        to_save_od = OrderedDict()
        to_save_od["weight"] = OrderedDict((k, v.half()) for k, v in state.items())
        to_save_od["config"] = config
        to_save_od["info"] = "GPT-e15"
        process_ckpt.my_save(to_save_od, "GPT_weights_v2/probe-e15.ckpt")
        s1 = HERE / "gptsovits_s1_my_save.ckpt"
        shutil.copy("GPT_weights_v2/probe-e15.ckpt", s1)
        loaded = torch.load(str(s1), map_location="cpu", weights_only=False)
        out[s1.name] = {"writer": "s1_train.my_model_ckpt + process_ckpt.my_save",
                        "reader": "torch.load(weights_only=False) (change_gpt_weights)", "top_keys": list(loaded),
                        "config_type": type(loaded["config"]).__name__, "weight": plain(loaded["weight"]),
                        "config": plain(loaded["config"]), "info": loaded["info"], "globals": pickle_globals(s1)}
    finally:
        os.chdir(cwd)
        shutil.rmtree(work)
    out["_made_with"] = {"torch": torch.__version__, "python": sys.version.split()[0],
                         "gpt_sovits": "RVC-Boss/GPT-SoVITS 48b1a0169a28582a8984402f82cf438d3bfa6aca"}
    (HERE / "containers.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
