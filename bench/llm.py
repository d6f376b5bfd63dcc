"""Local LLM speed: time to first token and tokens per second of the model ``auto`` runs here.

    python -m bench llm                         # the local default (SmolLM2 offline, Qwen2.5 when present)
    python -m bench llm --model qwen2.5-0.5b --max-new-tokens 96 --repeat 3

``--model`` takes what ``transformers.model`` takes (smollm2, qwen2.5-0.5b, a folder ...); the default is
what ``auto`` would pick on this machine with no LLM server and no API key. Each question is asked
with the app's persona, decoding greedily. Time to first token (TTFT) runs from the call to the first
streamed text, so it includes the prompt's prefill; tokens per second counts the reply's tokens after
the first over the time after it (decoding only). One untimed warm-up reply comes first. Loading is
timed once (a GGUF model's one-time conversion, when it happens, is reported apart from loading).
"""

from __future__ import annotations

import argparse
import statistics
import time

QUESTIONS = ["What is the capital of France?",
             "Tell me about yourself in two sentences.",
             "How do plants make their food?"]


def default_model() -> str:
    from app_modules import auto, config
    from app_modules.checkpoints import CheckpointManager

    settings = config.load(None, ["llm=auto"])
    choice = auto._local_llm(settings, CheckpointManager(), auto.Probes(timeout=0.2, hub_timeout=0.2))
    return str(choice.options["model"])


def main() -> int:
    import torch

    from app_modules.checkpoints import CheckpointManager
    from app_modules.config import PipelineSettings
    from app_modules.history import ChatHistory
    from LLM.transformers_llm import TransformersLLM

    p = argparse.ArgumentParser(prog="python -m bench llm", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="default: the local model auto picks here")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeat", type=int, default=1, help="times each question is asked")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 leaves torch's default")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or default_model()
    ck = CheckpointManager()

    t0 = time.perf_counter()
    if model == "smollm2":
        from app_modules import bundled
        from LLM.gguf_convert import convert, converted_folder, is_converted

        gguf = bundled.smollm2_gguf()
        if gguf is not None and not is_converted(converted_folder(gguf, ck.root / "converted")):
            convert(gguf, ck.root / "converted")
            print(f"one-time GGUF conversion: {time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
    llm = TransformersLLM(TransformersLLM.Options(model=model, temperature=0, max_new_tokens=args.max_new_tokens,
                                                  device=args.device), ck)
    load_s = time.perf_counter() - t0
    print(f"model: {llm.label} on {llm.device} ({llm.dtype}, {torch.get_num_threads()} threads); load {load_s:.1f} s")

    persona = PipelineSettings().system_prompt
    warm = time.perf_counter()
    list(llm.stream(ChatHistory(persona).messages("Hello!", llm.count_tokens, llm.context_tokens)))
    print(f"first reply after loading (warm-up, not counted): {time.perf_counter() - warm:.1f} s")
    ttfts, rates = [], []
    print(f"{'question':44} {'TTFT s':>7} {'tokens':>6} {'tok/s':>6}  reply")
    for question in QUESTIONS * args.repeat:
        messages = ChatHistory(persona).messages(question, llm.count_tokens, llm.context_tokens)
        start = time.perf_counter()
        first = None
        reply = ""
        for piece in llm.stream(messages):
            if first is None:
                first = time.perf_counter()
            reply += piece
        end = time.perf_counter()
        if first is None:
            print(f"{question[:44]:44} no reply")
            continue
        tokens = llm.count_tokens(reply)
        rate = (tokens - 1) / (end - first) if tokens > 1 and end > first else float("nan")
        ttfts.append(first - start)
        rates.append(rate)
        print(f"{question[:44]:44} {first - start:7.2f} {tokens:6d} {rate:6.1f}  {' '.join(reply.split())[:60]}")
    if ttfts:
        print(f"median: time to first token {statistics.median(ttfts):.2f} s, "
              f"{statistics.median(rates):.1f} tokens/s ({llm.label}, {llm.device})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
