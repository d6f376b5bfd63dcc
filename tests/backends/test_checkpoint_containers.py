"""Loader probes: checkpoint files in the containers the originals' training and release code writes,
read through our loaders (``app_modules.safe_pickle`` underneath, no ``allow_pickle``) and compared
tensor by tensor with what the original's own loading code gets from the same file.

* GPT-SoVITS: ``tests/data/checkpoints`` holds files written by the original ``process_ckpt.savee`` (with
  its pickled ``utils.HParams``) and ``my_save``, and ``containers.json``, what the original loaders read from
  them (see ``make_fixtures.py`` there). Full-size files are written here the same way (the pickle globals are
  checked to be the original's) so the whole networks load.
* Wav2Lip, S3FD, the SadTalker mapping, GFPGAN: their writers are a single ``torch.save`` of plain
  containers, reproduced here with the fields each script saves (wav2lip_train.save_checkpoint; the bare
  s3fd state dict; the face-vid2vid-style ``{mapping, discriminator, optimizer_*, epoch}`` that SadTalker's
  ``load_cpk_mapping`` reads; basicsr's ``{params, params_ema}``), in fp32 and fp16, with and without
  ``module.``, in the zip format and in the legacy one of torch < 1.6 (the era of wav2lip.pth and s3fd).
  The "original's tensors" are ``torch.load(weights_only=False)`` plus the original's key handling.
"""

from __future__ import annotations

import json
import pickletools
import sys
import types
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from app_modules.safe_pickle import CheckpointConfig, UnsafeCheckpointError, load_checkpoint
from tests.helpers.seeded_checkpoints import seeded_state_dict
from THG.enhancer.gfpgan import load_gfpgan
from THG.sadtalker.loaders import load_mapping
from THG.wav2lip.loading import load_s3fd, load_wav2lip, read_state_dict
from VITS.gptsovits.loaders import CheckpointFormatError, load_sovits, load_t2s, read_container

DATA = Path(__file__).resolve().parent.parent / "data"
CONTAINERS = json.loads((DATA / "checkpoints" / "containers.json").read_text())
S2_FILE, S1_FILE = DATA / "checkpoints" / "gptsovits_s2_savee.pth", DATA / "checkpoints" / "gptsovits_s1_my_save.ckpt"


class Foreign:
    """Stands for any class a published checkpoint does not carry."""


def _original_values(entry: dict) -> dict[str, torch.Tensor]:
    dtypes = {"torch.float16": torch.float16, "torch.float32": torch.float32, "torch.int64": torch.int64}
    return {k: torch.tensor(v["values"], dtype=dtypes[v["dtype"]]).reshape(v["shape"])
            for k, v in entry.items()}


def _plain(obj):
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _pickle_globals(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    return sorted({arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"})


def _assert_same_tensors(mine: dict, original: dict) -> None:
    assert list(mine) == list(original)
    for k, v in original.items():
        assert mine[k].dtype == v.dtype, k
        torch.testing.assert_close(mine[k], v, rtol=0, atol=0, msg=k)


# ------------------------------------------------------------------ GPT-SoVITS: files the original wrote


def test_sovits_file_from_training_loads_with_its_pickled_hparams():
    entry = CONTAINERS[S2_FILE.name]
    assert "utils.HParams" in entry["globals"]  # the reason weights_only=True cannot read it
    with pytest.raises(Exception, match="utils.HParams"):
        torch.load(S2_FILE, map_location="cpu", weights_only=True)
    obj = load_checkpoint(S2_FILE)
    assert list(obj) == entry["top_keys"] and obj["info"] == entry["info"] == "8epoch_96iteration"
    _assert_same_tensors(obj["weight"], _original_values(entry["weight"]))
    hps = obj["config"]
    assert isinstance(hps, CheckpointConfig) and isinstance(hps.model, CheckpointConfig)
    assert _plain(hps) == entry["config"]
    # the attribute and item access change_sovits_weights relies on
    assert hps.model.version == hps["model"]["version"] == "v2"
    assert hps.data.filter_length // 2 + 1 == 1025 and hps.train.segment_size // hps.data.hop_length == 32
    assert "model" in hps and hps.get("nothing") is None
    with pytest.raises(AttributeError, match="no 'nothing'"):
        getattr(hps, "nothing")  # noqa: B009 (the attribute access is what is tested)


def test_gpt_file_from_training_loads():
    entry = CONTAINERS[S1_FILE.name]
    obj = load_checkpoint(S1_FILE)
    assert list(obj) == entry["top_keys"] and obj["info"] == entry["info"]
    _assert_same_tensors(obj["weight"], _original_values(entry["weight"]))
    assert obj["config"] == entry["config"] and obj["config"]["data"]["max_sec"] == 54


def test_the_gpt_sovits_reader_takes_the_training_file_without_allow_pickle():
    obj = read_container(S2_FILE)
    assert obj["config"].model.gin_channels == 512


def test_later_versions_are_named_not_misread(tmp_path):
    # v3/v4 LoRA and v2Pro files start with a version tag where the zip's "PK" was (process_ckpt.my_save2)
    for tag, name in ((b"05", "v2Pro"), (b"04", "v4 LoRA")):
        f = tmp_path / f"{tag.decode()}.pth"
        f.write_bytes(tag + S2_FILE.read_bytes()[2:])
        with pytest.raises(CheckpointFormatError, match=f"GPT-SoVITS {name} model; only v2"):
            load_sovits(f)


# ------------------------------------------------- GPT-SoVITS: full-size files written the same way


class HParams:
    """GPT-SoVITS ``utils.HParams`` as far as pickling sees it: nested dicts become nested instances."""

    def __init__(self, **kwargs):
        for k, v in kwargs.items():
            setattr(self, k, HParams(**v) if isinstance(v, dict) else v)


@contextmanager
def _as_utils_module():
    """Lets pickle write ``HParams`` under the name the original's objects have, ``utils.HParams``."""
    module = types.ModuleType("utils")
    module.HParams = HParams
    saved = sys.modules.get("utils")
    HParams.__module__ = "utils"
    sys.modules["utils"] = module
    try:
        yield
    finally:
        HParams.__module__ = __name__
        if saved is None:
            del sys.modules["utils"]
        else:
            sys.modules["utils"] = saved


def _write_savee(path: Path, weight: dict, dtype: torch.dtype) -> Path:
    """``process_ckpt.savee``: enc_q dropped, weights cast (the original casts to fp16), the hps object."""
    opt = OrderedDict()
    opt["weight"] = {k: v.to(dtype) for k, v in weight.items() if "enc_q" not in k}
    opt["config"] = HParams(**CONTAINERS[S2_FILE.name]["config"])
    opt["info"] = "8epoch_96iteration"
    with _as_utils_module():
        torch.save(opt, path)
    return path


def _original_read(path: Path):
    """``process_ckpt.load_sovits_new`` for a "PK" file: torch.load(weights_only=False), utils importable."""
    with _as_utils_module():
        return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_sovits_written_like_training_loads_into_the_network(reference_dir, tmp_path, dtype):
    weight = seeded_state_dict(reference_dir, "gptsovits_sovits")
    weight["enc_q.proj.weight"] = torch.ones(384, 192, 1)
    path = _write_savee(tmp_path / "voice_e8_s96.pth", weight, dtype)
    assert _pickle_globals(path) == sorted(  # the same container as the original's savee wrote
        g.replace("HalfStorage", "FloatStorage") if dtype == torch.float32 else g
        for g in CONTAINERS[S2_FILE.name]["globals"])
    original = _original_read(path)["weight"]
    model, hps = load_sovits(path)
    mine = model.state_dict()
    assert set(mine) == set(original)
    for k, v in original.items():
        torch.testing.assert_close(mine[k], v.float(), rtol=0, atol=0, msg=k)
    assert hps.model.gin_channels == 512 and hps.data.hop_length == 640


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_gpt_written_like_training_loads_into_the_network(reference_dir, tmp_path, dtype):
    to_save = OrderedDict()  # s1_train.my_model_ckpt, then process_ckpt.my_save (a plain torch.save)
    seeded = seeded_state_dict(reference_dir, "gptsovits_t2s")
    to_save["weight"] = OrderedDict((k, v.to(dtype)) for k, v in seeded.items())
    to_save["config"] = CONTAINERS[S1_FILE.name]["config"]
    to_save["info"] = "GPT-e15"
    path = tmp_path / "voice-e15.ckpt"
    torch.save(to_save, path)
    assert _pickle_globals(path) == sorted(
        g.replace("HalfStorage", "FloatStorage") if dtype == torch.float32 else g
        for g in CONTAINERS[S1_FILE.name]["globals"])
    original = torch.load(path, map_location="cpu", weights_only=False)["weight"]  # change_gpt_weights
    model, config = load_t2s(path)
    mine = model.state_dict()
    assert set("model." + k for k in mine) == set(original)
    for k, v in original.items():
        torch.testing.assert_close(mine[k[len("model."):]], v.float(), rtol=0, atol=0, msg=k)
    assert config["data"]["max_sec"] == 54


def test_gpt_sovits_refuses_other_pickled_classes(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"weight": {}, "config": {"model": Foreign()}}, path)
    with pytest.raises(CheckpointFormatError, match=f"pickled {__name__}.Foreign.*allow_pickle: true"):
        load_sovits(path)
    obj = read_container(path, allow_pickle=True)  # the operator's switch: trusted files load as they are
    assert isinstance(obj["config"]["model"], Foreign)


# ----------------------------------------------------------------------------- Wav2Lip and S3FD


def _adam_state() -> dict:
    """A real optimizer state_dict (what ``save_optimizer_state`` stores): ints, floats, tuples, tensors."""
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(3))]
    opt = torch.optim.Adam(params, lr=1e-4, betas=(0.5, 0.999))
    sum(p.sum() for p in params).backward()
    opt.step()
    return opt.state_dict()


@pytest.fixture(scope="module")
def wav2lip_seeded(reference_dir):
    return seeded_state_dict(reference_dir, "wav2lip")


@pytest.mark.parametrize("prefix,dtype,legacy", [("module.", torch.float32, False), ("", torch.float32, True),
                                                 ("module.", torch.float16, True), ("", torch.float16, False)])
def test_wav2lip_training_checkpoint_forms_load(wav2lip_seeded, tmp_path, prefix, dtype, legacy):
    path = tmp_path / "checkpoint_step000250000.pth"
    torch.save({"state_dict": OrderedDict((prefix + k, v.to(dtype) if v.is_floating_point() else v)
                                          for k, v in wav2lip_seeded.items()),
                "optimizer": _adam_state(), "global_step": 250000, "global_epoch": 112},
               path, _use_new_zipfile_serialization=not legacy)  # wav2lip_train.save_checkpoint
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)  # inference.load_model
    original = {k.replace("module.", ""): v for k, v in checkpoint["state_dict"].items()}
    _assert_same_tensors(read_state_dict(path), original)
    mine = load_wav2lip(path).state_dict()
    for k, v in original.items():
        torch.testing.assert_close(mine[k], v.to(mine[k].dtype), rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("legacy", [True, False])
def test_s3fd_release_file_loads(reference_dir, tmp_path, legacy):
    path = tmp_path / "s3fd-619a316812.pth"
    torch.save(OrderedDict(seeded_state_dict(reference_dir, "s3fd")), path, _use_new_zipfile_serialization=not legacy)
    original = torch.load(path, map_location="cpu", weights_only=False)  # SFDDetector: load_state_dict(it)
    mine = load_s3fd(path).state_dict()
    _assert_same_tensors(OrderedDict((k, mine[k]) for k in original), original)


def test_wav2lip_loaders_refuse_other_pickled_classes(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "optimizer": Foreign()}, path)
    with pytest.raises(UnsafeCheckpointError, match=f"pickled {__name__}.Foreign"):
        load_wav2lip(path)
    torch.save({"w": torch.zeros(1), "hook": print}, path)
    with pytest.raises(UnsafeCheckpointError, match="pickled builtins.print"):
        load_s3fd(path)


# ------------------------------------------------------------------------------ SadTalker mapping


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_sadtalker_mapping_training_checkpoint_loads(reference_dir, tmp_path, dtype):
    """``load_cpk_mapping`` reads mapping, discriminator, optimizer_mapping, optimizer_discriminator and
    epoch from the file (face-vid2vid's trainer saves ``{name: state_dict()}`` plus ``epoch``)."""
    mapping = seeded_state_dict(reference_dir, "sadtalker_mapping")
    discriminator = torch.nn.Sequential(torch.nn.Conv1d(70, 8, 3), torch.nn.BatchNorm1d(8)).state_dict()
    path = tmp_path / "mapping_00229-model.pth.tar"
    torch.save({"mapping": OrderedDict((k, v.to(dtype) if v.is_floating_point() else v) for k, v in mapping.items()),
                "discriminator": discriminator, "optimizer_mapping": _adam_state(),
                "optimizer_discriminator": _adam_state(), "epoch": 229}, path)
    # Torch's own safe reader takes this form too (upstream reads it with a plain torch.load).
    original = torch.load(path, map_location="cpu", weights_only=True)["mapping"]
    mine = load_mapping(path).state_dict()
    assert set(mine) == set(original)
    for k, v in original.items():
        torch.testing.assert_close(mine[k], v.to(mine[k].dtype), rtol=0, atol=0, msg=k)
    torch.save({"mapping": mapping, "epoch": np.int64(229), "args": Foreign()}, path)
    with pytest.raises(UnsafeCheckpointError, match=f"pickled {__name__}.Foreign"):
        load_mapping(path)


# ----------------------------------------------------------------------------------------- GFPGAN


@pytest.mark.parametrize("keys", [("params_ema",), ("params", "params_ema"), ("params",)])
def test_gfpgan_basicsr_checkpoint_forms_load(reference_dir, tmp_path, keys):
    from tests.backends.test_gfpgan import SMALL, _manifest, _seeded

    state = _seeded(reference_dir, _manifest("gfpgan_small.json"))
    other = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / "GFPGANv1.4.pth"
    torch.save({k: state if k == keys[-1] else other for k in keys}, path)  # basicsr save_network
    loadnet = torch.load(path, map_location="cpu", weights_only=False)  # GFPGANer.__init__
    original = loadnet["params_ema" if "params_ema" in loadnet else "params"]
    mine = load_gfpgan(path, **SMALL).state_dict()
    _assert_same_tensors(OrderedDict((k, mine[k]) for k in original), original)
    torch.save({"params_ema": state, "extra": Foreign()}, path)
    with pytest.raises(UnsafeCheckpointError, match=f"pickled {__name__}.Foreign"):
        load_gfpgan(path, **SMALL)
