"""The XTTS worker: coqui-tts loaded in a process of its own, where ``TTS`` can only mean coqui's package.

Talker's TTS stage package is also called ``TTS``. coqui-tts imports its submodules lazily
(``TTS.tts.configs.xtts_config`` and ``TTS.tts.models.xtts`` while the model loads), so renaming
modules in one process cannot work; here the project root is simply not on the import path.
``VITS/xtts_tts.py`` starts this file with ``python -I`` (no script folder, no PYTHONPATH, no user
site on sys.path), optionally under another Python that has coqui-tts installed (its torch and
transformers pins clash with Talker's), loads the model once and sends it one sentence at a time.

Only the standard library is imported before coqui, so the parent can import this module for the
framing: each message is ``<u32 header length><u32 blob length><JSON header><blob>``. Requests:
``{"op": "say", "id", "text", "wav", "language", "voice_key"}`` and ``{"op": "quit"}``. Replies: one
``{"event": "ready", "ok", "sample_rate" | "error"}`` after loading, then per request ``{"id", "ok",
"samples"}`` with the audio as little-endian float32 in the blob, or ``{"id", "ok": false, "error"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from array import array
from collections import OrderedDict
from typing import Any, BinaryIO

_HEAD = struct.Struct("<II")
MAX_HEADER = 1 << 20


def send(out: BinaryIO, header: dict, blob: bytes = b"") -> None:
    data = json.dumps(header).encode("utf-8")
    out.write(_HEAD.pack(len(data), len(blob)) + data + blob)
    out.flush()


def _read_exact(inp: BinaryIO, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = inp.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(inp: BinaryIO) -> tuple[dict, bytes] | None:
    """The next message, or None at the end of the stream (the other side has gone)."""
    head = _read_exact(inp, _HEAD.size)
    if head is None:
        return None
    n, m = _HEAD.unpack(head)
    if n > MAX_HEADER:
        raise ValueError(f"message header of {n} bytes: the stream is out of step")
    data = _read_exact(inp, n)
    blob = _read_exact(inp, m) if m else b""
    if data is None or blob is None:
        return None
    return json.loads(data.decode("utf-8")), blob


def float32_bytes(wav: Any) -> tuple[bytes, int]:
    """Audio (a numpy array, a torch tensor or a list of floats) as little-endian float32 bytes."""
    if hasattr(wav, "detach"):  # torch
        wav = wav.detach().cpu().numpy()
    if hasattr(wav, "astype"):  # numpy
        flat = wav.reshape(-1).astype("<f4")
        return flat.tobytes(), int(flat.shape[0])
    samples = array("f", (float(x) for x in wav))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes(), len(samples)


def _isolate(root: str) -> None:
    """Take the project root (and the empty entry meaning the current folder) off the import path."""
    root = os.path.realpath(root)
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != root]


def _load(args: argparse.Namespace):
    """coqui-tts's XTTS model, on the device asked for."""
    import site

    for d in args.site:  # where the coqui-tts distribution was found, ahead of everything else
        sys.path.insert(0, d)
        site.addsitedir(d)
    import TTS.api  # noqa: N811 -- coqui's package; Talker's folder of the same name is not on the path

    where = os.path.realpath(os.path.dirname(TTS.api.__file__))
    if where.startswith(os.path.realpath(args.root) + os.sep):
        raise RuntimeError(f"'TTS' resolved to Talker's own package ({where}), not coqui-tts")
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    api = TTS.api.TTS(args.model, progress_bar=False).to(device)
    synth = api.synthesizer
    return synth.tts_model, int(getattr(synth, "output_sample_rate", 24000) or 24000)


def _settings(config: Any, keys: dict[str, str]) -> dict[str, Any]:
    """Values of the model's config for ``keys`` (config name -> argument name), as coqui's synthesize uses."""
    out = {}
    for key, arg in keys.items():
        value = getattr(config, key, None)
        if value is not None:
            out[arg] = value
    return out


_VOICE = {"gpt_cond_len": "gpt_cond_len", "gpt_cond_chunk_len": "gpt_cond_chunk_len",
          "max_ref_len": "max_ref_length", "sound_norm_refs": "sound_norm_refs"}
_SAMPLING = {k: k for k in ("temperature", "length_penalty", "repetition_penalty", "top_k", "top_p")}


def serve(model: Any, inp: BinaryIO, out: BinaryIO, voice_cache: int) -> None:
    """Answer requests until "quit" or the end of the input. Speaker latents are kept per voice (LRU)."""
    latents: OrderedDict[str, tuple] = OrderedDict()
    config = getattr(model, "config", None)
    while True:
        msg = receive(inp)
        if msg is None or msg[0].get("op") == "quit":
            return
        req = msg[0]
        try:
            key = req["voice_key"]
            if key in latents:
                latents.move_to_end(key)
            else:
                latents[key] = model.get_conditioning_latents(audio_path=[req["wav"]], **_settings(config, _VOICE))
                while len(latents) > voice_cache:
                    latents.popitem(last=False)
            gpt_latent, speaker = latents[key]
            result = model.inference(req["text"], req["language"], gpt_latent, speaker,
                                     **_settings(config, _SAMPLING))
            blob, n = float32_bytes(result["wav"])
            send(out, {"id": req.get("id"), "ok": True, "samples": n}, blob)
        except Exception as e:  # one bad sentence must not end the worker
            send(out, {"id": req.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="XTTS worker (started by VITS/xtts_tts.py)")
    ap.add_argument("--root", required=True, help="Talker's project root, kept off the import path")
    ap.add_argument("--site", action="append", default=[], help="a site folder to import coqui-tts from")
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--voice-cache", type=int, default=8)
    args = ap.parse_args(argv)
    # The messages travel on the original stdin/stdout. Afterwards stdin reads as empty (coqui's
    # licence prompt gets EOF, not a request) and stdout is stderr (prints cannot corrupt a message).
    inp = os.fdopen(os.dup(0), "rb")
    out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    _isolate(args.root)
    try:
        model, sample_rate = _load(args)
    except BaseException as e:  # noqa: BLE001 -- any failure to load is reported, then the worker ends
        send(out, {"event": "ready", "ok": False, "error": f"{type(e).__name__}: {e}"})
        return 1
    send(out, {"event": "ready", "ok": True, "sample_rate": sample_rate})
    serve(model, inp, out, max(1, args.voice_cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
