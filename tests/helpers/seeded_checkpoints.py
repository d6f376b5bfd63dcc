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
    return folder
