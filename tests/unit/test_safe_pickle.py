"""The allow-list unpickler for checkpoints: what it rebuilds, what it refuses, and that it runs nothing."""

from __future__ import annotations

import argparse
import collections
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from app_modules.errors import MissingWeightsError, TalkerError
from app_modules.safe_pickle import CheckpointConfig, UnsafeCheckpointError, load_checkpoint


class _WritesAFile:
    """Unpickling this calls ``open(path, "w")``: the file appears only if the call runs."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


class _Local:
    pass


@pytest.mark.parametrize("legacy", [False, True])
def test_plain_checkpoint_contents_come_back(tmp_path, legacy):
    params = [torch.nn.Parameter(torch.randn(2, 2))]
    opt = torch.optim.Adam(params)
    params[0].sum().backward()
    opt.step()
    obj = {"state_dict": collections.OrderedDict(w=torch.randn(3).half(), n=torch.tensor(7)),
           "param": torch.nn.Parameter(torch.ones(2)), "optimizer": opt.state_dict(),
           "step": np.int64(5), "loss": np.float32(0.25), "arr": np.arange(4), "dtype": np.dtype("f2"),
           "counts": collections.Counter(a=2), "tags": {"x", "y"}, "blob": b"\x00\x01", "tdtype": torch.bfloat16,
           "size": torch.Size([2, 3]), "device": torch.device("cpu"), "args": argparse.Namespace(lr=0.1, name="x")}
    path = tmp_path / "c.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    out = load_checkpoint(path)
    assert isinstance(out["state_dict"], collections.OrderedDict) and out["state_dict"]["w"].dtype == torch.float16
    torch.testing.assert_close(out["state_dict"]["w"], obj["state_dict"]["w"])
    assert isinstance(out["param"], torch.nn.Parameter)
    torch.testing.assert_close(out["optimizer"]["state"][0]["exp_avg"], obj["optimizer"]["state"][0]["exp_avg"])
    assert out["optimizer"]["param_groups"] == obj["optimizer"]["param_groups"]
    assert out["step"] == 5 and out["loss"] == np.float32(0.25) and out["arr"].tolist() == [0, 1, 2, 3]
    assert out["dtype"] == np.float16 and out["counts"] == {"a": 2} and out["tags"] == {"x", "y"}
    assert out["blob"] == b"\x00\x01" and out["tdtype"] is torch.bfloat16 and out["size"] == (2, 3)
    assert out["device"] == torch.device("cpu")
    assert isinstance(out["args"], CheckpointConfig) and out["args"].lr == out["args"]["lr"] == 0.1


@pytest.mark.parametrize("protocol", [1, 2, 4])
def test_code_in_a_checkpoint_is_refused_and_never_run(tmp_path, protocol):
    target = tmp_path / "created-by-unpickling"
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "x": _WritesAFile(str(target))}, path, pickle_protocol=protocol)
    with pytest.raises(UnsafeCheckpointError, match=r"evil.pth holds a pickled io.open") as e:
        load_checkpoint(path)
    assert e.value.global_name == "io.open"
    assert not target.exists()
    # what torch.load(weights_only=False) would have done with it
    torch.load(path, weights_only=False)
    assert target.exists()


@pytest.mark.parametrize("obj,name", [(os.system, "posix.system"), (eval, "builtins.eval"),
                                      (_Local(), f"{__name__}._Local"), (torch.load, "torch.serialization.load"),
                                      (collections.defaultdict(list), "collections.defaultdict")])
def test_the_refusal_names_the_class(tmp_path, obj, name):
    path = tmp_path / "odd.pth"
    torch.save({"x": obj}, path)
    with pytest.raises(UnsafeCheckpointError, match=f"pickled {name}, which the safe checkpoint loader refuses"):
        load_checkpoint(path, trust_hint=" (or set allow_pickle)")
    with pytest.raises(UnsafeCheckpointError, match=r"use the official file \(or set allow_pickle\)$"):
        load_checkpoint(path, trust_hint=" (or set allow_pickle)")


def test_allow_pickle_trusts_the_file_but_still_maps_config_classes(tmp_path):
    path = tmp_path / "trusted.pth"
    torch.save({"x": _Local(), "args": argparse.Namespace(a=1)}, path)
    out = load_checkpoint(path, allow_pickle=True)
    assert isinstance(out["x"], _Local) and isinstance(out["args"], CheckpointConfig)


def test_config_objects_read_as_attributes_and_items():
    cfg = CheckpointConfig()
    cfg.__setstate__({"model": CheckpointConfig(gin=512), "lr": 0.1})
    assert cfg.model.gin == cfg["model"]["gin"] == 512 and dict(cfg)["lr"] == 0.1
    assert hasattr(cfg, "lr") and not hasattr(cfg, "nope")
    with pytest.raises(Exception, match="state"):
        CheckpointConfig().__setstate__(["not", "a", "dict"])


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(MissingWeightsError, match="checkpoint file not found"):
        load_checkpoint(tmp_path / "absent.pth")
    page = tmp_path / "page.pth"
    page.write_text("<html>Too Many Requests</html>")
    with pytest.raises(TalkerError, match="cannot read the mapping file .*page.pth: UnpicklingError.*download it"):
        load_checkpoint(page, what="mapping file")
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(1000)}, good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(Path(good).read_bytes()[:1500])
    with pytest.raises(TalkerError, match="cannot read the checkpoint .*cut.pth"):
        load_checkpoint(cut)
