"""Reading pickled checkpoints (``torch.save`` files) without running code from them.

A ``.pth``/``.ckpt`` file is a pickle, and unpickling can call any importable function. The
published checkpoints need only tensors, plain containers, a few numpy scalars and, in GPT-SoVITS's
SoVITS files, the training config pickled as ``utils.HParams`` (``process_ckpt.savee`` stores the
``hps`` object itself). ``torch.load(weights_only=True)`` refuses that class, and importing it for
real would mean trusting whatever ``utils`` module happens to be on the path. So ``load_checkpoint``
unpickles with an allow-list instead:

* tensors and storages (the rebuild functions ``torch.save`` writes), ``torch.Size``, dtypes, devices;
* ``dict``/``list``/``tuple``/``set``, ``OrderedDict``, ``Counter``, bytes, numpy scalars, dtypes and arrays;
* the known config classes (``CONFIG_CLASSES``), rebuilt as ``CheckpointConfig``: a dict with attribute
  access, so both ``hps.model.gin_channels`` and ``hps["model"]`` work as they do on the original.

Any other global is refused with ``UnsafeCheckpointError`` naming it. ``allow_pickle=True`` is the
operator's "I trust this file" switch: everything is unpickled as ``torch.load(weights_only=False)``
would, except that the config classes still map to ``CheckpointConfig`` (the original's ``utils``
module is not importable here).
"""

from __future__ import annotations

import _compat_pickle
import collections
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app_modules.errors import MissingWeightsError, TalkerError

# Pickled config objects of the original training scripts -> how they are rebuilt here.
CONFIG_CLASSES = (
    "utils.HParams",  # GPT-SoVITS s2 training (``utils.get_hparams``), stored whole in every SoVITS file
    "argparse.Namespace",  # the usual way training scripts keep their command line in a checkpoint
)


class UnsafeCheckpointError(TalkerError):
    """A checkpoint holds a pickled object outside the allow-list; nothing from it was run."""

    def __init__(self, path: Path, global_name: str, trust_hint: str = ""):
        super().__init__(
            f"{path.name} holds a pickled {global_name}, which the safe checkpoint loader refuses (unpickling "
            "it could run code from the file). It is not a published checkpoint of a supported model: use the "
            f"official file{trust_hint}")
        self.global_name = global_name


class CheckpointConfig(dict):
    """A config object from a checkpoint (GPT-SoVITS ``utils.HParams``, ``argparse.Namespace``): its
    attributes as dict items, readable as attributes too. Nested configs are ``CheckpointConfig`` as well."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the checkpoint's config has no {name!r} (it has {sorted(self)})") from None

    def __setstate__(self, state: Any) -> None:
        # pickle's BUILD step: the original instance's __dict__ (or (dict, slots) for slotted classes)
        if isinstance(state, tuple) and len(state) == 2:
            state = {**(state[0] or {}), **(state[1] or {})}
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise pickle.UnpicklingError(f"a config object with a {type(state).__name__} state")
        self.update(state)


def _numpy_core():
    return getattr(np, "_core", None) or np.core  # numpy 2 moved np.core to np._core


def _allowed_globals() -> dict[str, Any]:
    core = _numpy_core().multiarray
    allowed: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "collections.Counter": collections.Counter,
        "builtins.set": set, "builtins.frozenset": frozenset, "builtins.bytearray": bytearray,
        "builtins.complex": complex,
        "_codecs.encode": __import__("_codecs").encode,  # how protocol 2 stores bytes
        "torch.Size": torch.Size, "torch.device": torch.device,
        "numpy.dtype": np.dtype, "numpy.ndarray": np.ndarray,
        "numpy.core.multiarray.scalar": core.scalar, "numpy._core.multiarray.scalar": core.scalar,
        "numpy.core.multiarray._reconstruct": core._reconstruct,
        "numpy._core.multiarray._reconstruct": core._reconstruct,
    }
    # What torch.save writes for tensors and parameters (storages are resolved by torch.load itself).
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                 "_rebuild_parameter_with_state", "_rebuild_device_tensor_from_cpu_tensor"):
        if hasattr(torch._utils, name):
            allowed[f"torch._utils.{name}"] = getattr(torch._utils, name)
    # vars(), not getattr(): a module's lazy __getattr__ would import its submodules
    allowed.update((f"torch.{name}", v) for name, v in vars(torch).items() if isinstance(v, torch.dtype))
    # numpy >= 1.25 may name a dtype by its class (numpy.dtypes.Float32DType)
    dtypes = getattr(np, "dtypes", None)
    allowed.update((f"numpy.dtypes.{name}", v) for name, v in (vars(dtypes) if dtypes else {}).items()
                   if name.endswith("DType") and isinstance(v, type))
    return allowed


class _Refused(pickle.UnpicklingError):
    def __init__(self, global_name: str):
        super().__init__(f"refused global {global_name}")
        self.global_name = global_name


def _full_name(module: str, name: str) -> str:
    # Protocol 2 files from Python 2 (and Python 3's fix_imports) name builtins "__builtin__" etc.;
    # overriding find_class skips pickle's own translation, so it is done here.
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


class _SafeUnpickler(pickle.Unpickler):
    allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        full = _full_name(module, name)
        if full in CONFIG_CLASSES:
            return CheckpointConfig
        if full in self.allowed:
            return self.allowed[full]
        raise _Refused(full)


class _TrustingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if _full_name(module, name) in CONFIG_CLASSES:
            return CheckpointConfig
        return super().find_class(module, name)


class _PickleModule:
    """The two names ``torch.load(pickle_module=...)`` uses: ``Unpickler`` and ``load``."""

    def __init__(self, unpickler: type[pickle.Unpickler]):
        self.__name__ = f"talker.{unpickler.__name__}"
        self.Unpickler = unpickler

    def load(self, file, **kwargs):
        return self.Unpickler(file, **kwargs).load()


SAFE = _PickleModule(_SafeUnpickler)
TRUSTING = _PickleModule(_TrustingUnpickler)


def load_checkpoint(path: str | Path, *, allow_pickle: bool = False, what: str = "checkpoint",
                    trust_hint: str = "") -> Any:
    """The object ``torch.save`` stored in ``path``, on the CPU, read with the allow-list above.

    ``what`` names the file in messages ("the Wav2Lip checkpoint"); ``trust_hint`` is appended to the
    refusal (e.g. how the operator can set ``allow_pickle``). Raises ``MissingWeightsError`` when the
    file is absent, ``UnsafeCheckpointError`` for a refused global, ``TalkerError`` when it is not a
    readable torch file (truncated download, an HTML error page)."""
    p = Path(path)
    if not p.is_file():
        raise MissingWeightsError(f"{what} file not found: {p}")
    if os.getenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true"):
        # torch then refuses any pickle_module; its own weights-only reader is stricter still (no config classes)
        how = {"weights_only": True}
    else:  # weights_only=False only lets torch.load take our Unpickler: the allow-list is in find_class
        how = {"weights_only": False, "pickle_module": TRUSTING if allow_pickle else SAFE}
    try:
        return torch.load(p, map_location="cpu", **how)
    except _Refused as e:
        raise UnsafeCheckpointError(p, e.global_name, trust_hint) from None
    except Exception as e:  # torch.load raises many kinds on a damaged or foreign file
        first = (str(e).splitlines() or [""])[0][:200].rstrip(".")
        raise TalkerError(f"cannot read the {what} {p}: {type(e).__name__}: {first}. The file may be incomplete "
                          "or not a PyTorch checkpoint; download it again") from e
