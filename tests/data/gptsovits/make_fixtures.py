"""Writes ``t2s_ref_free.npz``: the ORIGINAL GPT-SoVITS T2S decoding without a reference prompt.

Not run by the tests (they only read what it wrote). Run once, by hand, outside the repository:

    python tests/data/gptsovits/make_fixtures.py /tmp/scratch-i21/RVC-Boss+GPT-SoVITS ../shared/reference

The first argument is a checkout of RVC-Boss/GPT-SoVITS (48b1a01, 2026-08-18). Its
``GPT_SoVITS/AR/models/t2s_model.py`` is imported from there unchanged, with one stub module
(``torchmetrics.classification.MulticlassAccuracy``, a training metric with no persistent state, as in
``reference/README.md``). ``Text2SemanticDecoder`` is built from ``configs/s1longer-v2.yaml`` and strictly
loaded with ``seeded_state_dict(gptsovits_t2s.json)`` (the ``model.`` prefix removed, as the Lightning
wrapper does); fp32, CPU, eval, 2 threads, ``torch.manual_seed(0)``. Then
``infer_panel(phoneme_ids, phoneme_len, None, bert_feature, top_k=1, top_p=1.0, temperature=1.0,
early_stop_num=20)`` with the inputs of ``reference/gptsovits_t2s.npz`` (the webui's ``ref_free`` mode,
``prompts=None``), once with the default repetition penalty 1.35 and once with 1.0.

Stored: ``{case}_y`` (1, n) int64 and ``{case}_idx`` () int64, what ``infer_panel`` returns, and
``{case}_kept``, what the webui then hands to SoVITS (``pred_semantic[:, -idx:]``), for the cases
``greedy`` (penalty 1.35) and ``greedy_norep``. Nothing of GPT-SoVITS is copied into this repository.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
import yaml

HERE = Path(__file__).resolve().parent


def main(upstream: Path, reference: Path) -> None:
    metric = types.ModuleType("torchmetrics.classification")
    metric.MulticlassAccuracy = lambda *a, **k: torch.nn.Identity()
    sys.modules["torchmetrics"] = types.ModuleType("torchmetrics")
    sys.modules["torchmetrics.classification"] = metric
    sys.path.insert(0, str(upstream / "GPT_SoVITS"))
    from AR.models.t2s_model import Text2SemanticDecoder

    spec = importlib.util.spec_from_file_location("seeded", reference / "seeded.py")
    seeded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeded)
    weights = seeded.seeded_state_dict(json.loads((reference / "gptsovits_t2s.json").read_text()))
    config = yaml.safe_load((upstream / "GPT_SoVITS/configs/s1longer-v2.yaml").read_text())
    torch.set_num_threads(2)
    model = Text2SemanticDecoder(config=config, top_k=3)
    model.load_state_dict({k[len("model."):]: v for k, v in weights.items()}, strict=True)
    model.eval()

    ref = np.load(reference / "gptsovits_t2s.npz")
    x, x_len, bert = (torch.from_numpy(ref[k]) for k in ("phoneme_ids", "phoneme_len", "bert_feature"))
    out = {}
    for case, penalty in (("greedy", 1.35), ("greedy_norep", 1.0)):
        torch.manual_seed(0)
        with torch.no_grad():
            y, idx = model.infer_panel(x, x_len, None, bert, top_k=1, top_p=1.0, temperature=1.0,
                                       early_stop_num=20, repetition_penalty=penalty)
        out[f"{case}_y"] = y.numpy().astype(np.int64)
        out[f"{case}_idx"] = np.int64(idx)
        out[f"{case}_kept"] = y[:, -idx:].numpy().astype(np.int64)
        print(case, y.shape, idx, y[0, :8].tolist())
    np.savez(HERE / "t2s_ref_free.npz", **out)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve())
