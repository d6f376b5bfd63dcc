"""Seeded weights written in the published checkpoint containers, for tests that load real files.

The values come from ``shared/reference/seeded.py`` (``seeded_state_dict(manifest)``), so they are the
weights the reference fixtures were computed with; the containers are those described in
``shared/reference/README.md``. Writing them through the files (rather than handing tensors to the
networks) checks key names, prefixes and strict loading along the way.

The Wav2Lip, S3FD and GPT-SoVITS writers take ``state=`` to put other tensors (keyed as in the
manifest) in the same container, for variants such as a doctored detector or a smaller random network.
``bench/`` imports this module too: the seeded weights are test data, not part of the application.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import torch


def seeded_module(reference_dir: Path) -> ModuleType:
    """``reference/seeded.py`` imported from its file (it is data, not a package)."""
    spec = importlib.util.spec_from_file_location("talker_seeded", Path(reference_dir) / "seeded.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def seeded_state_dict(reference_dir: Path, manifest: str) -> dict[str, torch.Tensor]:
    """The seeded tensors for ``<manifest>.json`` (e.g. ``wav2lip``, ``s3fd``, ``sadtalker_256``)."""
    keys = json.loads((Path(reference_dir) / f"{manifest}.json").read_text())
    return seeded_module(reference_dir).seeded_state_dict(keys)


def _state(reference_dir: Path, manifest: str, state: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    return seeded_state_dict(reference_dir, manifest) if state is None else state


def write_wav2lip(reference_dir: Path, path: Path, *, state: dict[str, torch.Tensor] | None = None) -> Path:
    """Like wav2lip_gan.pth: ``module.``-prefixed weights under ``state_dict`` plus the training extras."""
    sd = _state(reference_dir, "wav2lip", state)
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}, "optimizer": None,
                "global_step": 0, "global_epoch": 0}, path)
    return Path(path)


def write_s3fd(reference_dir: Path, path: Path, *, state: dict[str, torch.Tensor] | None = None) -> Path:
    """Like s3fd-619a316812.pth: the bare state dict."""
    torch.save(_state(reference_dir, "s3fd", state), path)
    return Path(path)


def write_sadtalker(reference_dir: Path, path: Path) -> Path:
    """Like SadTalker_V0.0.2_256.safetensors: one flat file, every sub-network under its prefix."""
    from safetensors.torch import save_file

    save_file(seeded_state_dict(reference_dir, "sadtalker_256"), str(path))
    return Path(path)


def write_sadtalker_mapping(reference_dir: Path, path: Path) -> Path:
    """Like mapping_00229-model.pth.tar: the MappingNet weights under ``mapping``."""
    torch.save({"mapping": seeded_state_dict(reference_dir, "sadtalker_mapping"), "epoch": 229}, path)
    return Path(path)


def write_gptsovits_t2s(reference_dir: Path, path: Path, config: dict, *,
                        state: dict[str, torch.Tensor] | None = None) -> Path:
    """Like s1bert25hz-...-longer-epoch=12-step=369668.ckpt: the GPT's weights under ``weight`` (the
    manifest keys already carry the Lightning wrapper's ``model.`` prefix), the training yaml under ``config``."""
    torch.save({"weight": _state(reference_dir, "gptsovits_t2s", state), "config": config}, path)
    return Path(path)


def write_gptsovits_sovits(reference_dir: Path, path: Path, config: dict, *,
                           state: dict[str, torch.Tensor] | None = None, **extras) -> Path:
    """Like s2G2333k.pth: the synthesizer's weights under ``weight``, the s2.json hyper-parameters under
    ``config``, and any other entries the real files carry (``info``)."""
    torch.save({"weight": _state(reference_dir, "gptsovits_sovits", state), "config": config, **extras}, path)
    return Path(path)


def _save_hf_folder(model, folder: Path) -> Path:
    """A transformers model in the layout the GPT-SoVITS repository publishes its feature models in:
    ``config.json`` + ``pytorch_model.bin`` (transformers 5 would write safetensors)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def write_gptsovits_hubert(folder: Path, **config) -> Path:
    """A random chinese-hubert-base stand-in (HuBERT-base shape unless ``config`` shrinks it), with the
    ``preprocessor_config.json`` the published folder has."""
    import transformers

    _save_hf_folder(transformers.HubertModel(transformers.HubertConfig(**config)), folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(folder)
    return Path(folder)


def write_gptsovits_bert(folder: Path, chars: str, **config) -> Path:
    """A random chinese-roberta-wwm-ext-large stand-in (BERT of ``config``'s shape) whose fast tokenizer
    (``tokenizer.json``, as published) knows ``chars``; other characters are [UNK], still one token each."""
    import tempfile

    import transformers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(chars))]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tok = transformers.BertTokenizerFast(str(Path(tmp) / "vocab.txt"))
        tok.save_pretrained(folder)
    config.setdefault("vocab_size", len(vocab))
    _save_hf_folder(transformers.BertModel(transformers.BertConfig(**config)), folder)


# --------------------------------------------------------------------------------------------- Ditto

DITTO_MODELS = {  # published file name (ditto_pytorch/models/) -> manifest under reference/ditto/
    "appearance_extractor.pth": "ditto/ditto_appearance_extractor",
    "motion_extractor.pth": "ditto/ditto_motion_extractor",
    "warp_network.pth": "ditto/ditto_warp_network",
    "decoder.pth": "ditto/ditto_decoder",
    "stitch_network.pth": "ditto/ditto_stitch_network",
    "lmdm_v0.4_hubert.pth": "ditto/ditto_lmdm_v0.4_hubert",
}


def rotary_frequencies(dim: int = 512, theta: float = 10000.0) -> torch.Tensor:
    """The rotary-embedding frequencies ``theta ** -(2i / dim)`` that every ``*.rotary.freqs`` buffer of
    the LMDM holds. Seeded N(0, 1) values would stand for no file anyone publishes, and the 11 copies of
    the one shared buffer would disagree (strict loading keeps the last), so the seeded LMDM carries
    these instead."""
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32)[: dim // 2] / dim)


def ditto_state(reference_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """Seeded tensors of one published Ditto file, keyed as in its manifest (the LMDM with true
    rotary frequencies, see ``rotary_frequencies``)."""
    keys = json.loads((Path(reference_dir) / f"{DITTO_MODELS[name]}.json").read_text())["state_dict"]
    sd = seeded_module(reference_dir).seeded_state_dict(keys)
    for k in sd:
        if k.endswith("rotary.freqs"):
            sd[k] = rotary_frequencies(2 * sd[k].shape[0])
    return sd


def write_ditto_model(reference_dir: Path, folder: Path, name: str, *,
                      state: dict[str, torch.Tensor] | None = None) -> Path:
    """One file of ``ditto_pytorch/models/`` in its published container:

    * the four LivePortrait renderer files: the bare state dict;
    * stitch_network.pth: ``{'retarget_shoulder': {'module.' + key: ...}, 'retarget_mouth': ...,
      'retarget_eye': ...}`` (only the first is read; the other two are LivePortrait's retargeting MLPs,
      written with their LivePortrait shapes so that a loader taking the wrong entry fails);
    * lmdm_v0.4_hubert.pth: ``{'model_state_dict': MotionDecoder weights, 'epoch': ...}``."""
    sd = ditto_state(reference_dir, name) if state is None else state
    path = Path(folder) / name
    if name == "stitch_network.pth":
        def mlp(sizes):
            return {f"module.mlp.{2 * i}.{p}": (torch.zeros(o, i_) if p == "weight" else torch.zeros(o))
                    for i, (i_, o) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)) for p in ("weight", "bias")}

        obj = {"retarget_shoulder": {"module." + k: v for k, v in sd.items()},
               "retarget_mouth": mlp([65, 128, 128, 64, 63]), "retarget_eye": mlp([66, 256, 256, 128, 128, 64, 63])}
    elif name.startswith("lmdm"):
        obj = {"model_state_dict": sd, "epoch": 0}
    else:
        obj = sd
    torch.save(obj, path)
    return path


def write_ditto(reference_dir: Path, folder: Path, *, states: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """All six ``ditto_pytorch/models/`` files into ``folder``; ``states`` replaces some files' tensors."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in DITTO_MODELS:
        write_ditto_model(reference_dir, folder, name, state=(states or {}).get(name))
    return folder
