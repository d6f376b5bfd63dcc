"""Read the published GPT-SoVITS v2 checkpoint containers into this package's networks.

* ``s1bert25hz-...ckpt``: ``{'weight': state_dict, 'config': dict}``; every key starts with ``model.``
  (the Lightning wrapper), loaded strictly like the original ``change_gpt_weights``.
* ``s2G2333k.pth`` and every SoVITS file training writes (``process_ckpt.savee``): ``{'weight': state_dict,
  'config': hps, 'info': str}``, hps a pickled ``utils.HParams`` (read as ``CheckpointConfig``); loaded
  non-strictly like ``change_sovits_weights``, because training-only ``enc_q.*`` may or may not be in the file.
  Unlike upstream, any *missing* inference key is an error here: a silently random layer would only
  show up as noise.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app_modules.errors import MissingWeightsError, TalkerError
from app_modules.safe_pickle import load_checkpoint
from VITS.gptsovits.sovits import SoVITSConfig, SynthesizerTrn
from VITS.gptsovits.t2s import T2SConfig, Text2SemanticDecoder

log = logging.getLogger(__name__)


class CheckpointFormatError(TalkerError):
    """The file exists but is not the container layout we expect."""


# process_ckpt.my_save2 overwrites the zip's "PK" with a version tag for the models after v2.
_VERSION_HEADERS = {b"02": "v3", b"03": "v3 LoRA", b"04": "v4 LoRA", b"05": "v2Pro", b"06": "v2ProPlus"}


def read_container(path: str | Path, allow_pickle: bool = False) -> dict:
    """The ``{'weight', 'config', ...}`` dict of a GPT-SoVITS file, read by the safe loader, which also
    takes the pickled ``utils.HParams`` config of SoVITS files (as a ``CheckpointConfig``)."""
    path = Path(path)
    if path.is_file():
        with open(path, "rb") as f:
            version = _VERSION_HEADERS.get(f.read(2))
        if version:
            raise CheckpointFormatError(f"{path.name} is a GPT-SoVITS {version} model; only v2 is supported")
    try:
        obj = load_checkpoint(path, allow_pickle=allow_pickle, what="GPT-SoVITS checkpoint", trust_hint=(
            " (from the lj1995/GPT-SoVITS repository), or, if you trust this one, set `allow_pickle: true` in "
            "the gpt-sovits options of the settings file"))
    except MissingWeightsError:
        raise
    except TalkerError as e:  # a refused pickled class (named in the message), or an unreadable file
        raise CheckpointFormatError(str(e)) from e
    if not isinstance(obj, dict) or "weight" not in obj:
        keys = list(obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointFormatError(f"{path.name}: expected a dict with 'weight' and 'config', found {keys}")
    return obj


def load_t2s(path: str | Path, allow_pickle: bool = False) -> tuple[Text2SemanticDecoder, dict]:
    """The T2S GPT in eval mode, and the file's ``config`` (``config['data']['max_sec']`` sets early stop)."""
    obj = read_container(path, allow_pickle)
    config = obj.get("config") or {}
    model = Text2SemanticDecoder(T2SConfig.from_dict(config.get("model", {})))
    weight = obj["weight"]
    bad = [k for k in weight if not k.startswith("model.")]
    if bad:
        raise CheckpointFormatError(f"{Path(path).name}: keys without the 'model.' prefix, e.g. {bad[:3]}; "
                                    "is this a SoVITS (s2G) file given as the GPT checkpoint?")
    state = {k[len("model."):]: v.float() if v.is_floating_point() else v for k, v in weight.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointFormatError(f"{Path(path).name} does not fit the GPT-SoVITS v2 T2S model: {e}") from e
    return model.eval(), config


def sovits_config_from_hps(hps: dict) -> SoVITSConfig:
    """Build the synthesizer config the way ``change_sovits_weights`` does from the stored hps."""
    model = dict(hps.get("model", {}))
    data = hps.get("data", {})
    keys = SoVITSConfig.__dataclass_fields__
    kwargs = {k: model[k] for k in keys if k in model}
    for k in ("resblock_kernel_sizes", "upsample_rates", "upsample_kernel_sizes"):
        if k in kwargs:
            kwargs[k] = tuple(kwargs[k])
    if "resblock_dilation_sizes" in kwargs:
        kwargs["resblock_dilation_sizes"] = tuple(tuple(d) for d in kwargs["resblock_dilation_sizes"])
    for k in ("filter_length", "hop_length", "win_length", "sampling_rate"):
        if k in data:
            kwargs[k] = int(data[k])
    return SoVITSConfig(**kwargs)


def load_sovits(path: str | Path, allow_pickle: bool = False) -> tuple[SynthesizerTrn, dict]:
    """The v2 synthesizer in eval mode, and the file's hps ``config``."""
    obj = read_container(path, allow_pickle)
    hps = obj.get("config") or {}
    weight = obj["weight"]
    emb = weight.get("enc_p.text_embedding.weight")
    if emb is not None and emb.shape[0] != 732:
        version = "v1" if emb.shape[0] == 322 else f"unknown ({emb.shape[0]} symbols)"
        raise CheckpointFormatError(f"{Path(path).name} is a GPT-SoVITS {version} model; only v2 is supported")
    model = SynthesizerTrn(sovits_config_from_hps(hps))
    state = {k: v.float() if v.is_floating_point() else v for k, v in weight.items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise CheckpointFormatError(f"{Path(path).name} lacks {len(result.missing_keys)} SoVITS v2 weights, "
                                    f"e.g. {result.missing_keys[:3]}; is it a v3/v4 or a GPT (s1) file?")
    extra = [k for k in result.unexpected_keys if not k.startswith("enc_q.")]
    if extra:
        log.warning("%s: ignoring %d unexpected keys, e.g. %s", Path(path).name, len(extra), extra[:3])
    return model.eval(), hps
