"""Next-token choice for the T2S decoder, in the order the original applies its filters.

Order matters for matching upstream: repetition penalty, then top-p on the penalised logits, then
temperature, then top-k, then an exponential-race draw (argmax of p / Exp(1)), which is a multinomial
draw that needs no host sync.
"""

from __future__ import annotations

import torch


def apply_repetition_penalty(logits: torch.Tensor, previous: torch.Tensor, penalty: float) -> torch.Tensor:
    """Penalise every token already in ``previous`` (prompt included), in place, as upstream does.

    In place on purpose: the caller's EOS test reads the penalised logits, like the original."""
    if previous is None or previous.numel() == 0 or penalty == 1.0:
        return logits
    idx = previous.long()
    score = torch.gather(logits, 1, idx)
    score = torch.where(score < 0, score * penalty, score / penalty)
    logits.scatter_(1, idx, score)
    return logits


def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None, temperature: float) -> torch.Tensor:
    """Top-p, temperature and top-k, returning new logits with removed entries at -inf."""
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=True)
        cum = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        drop_sorted = cum > top_p
        drop_sorted[:, 0] = False  # the most likely token always survives
        drop = drop_sorted.scatter(1, sorted_idx, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    logits = logits / max(temperature, 1e-5)
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = torch.where(logits < kth, torch.full_like(logits, float("-inf")), logits)
    return logits


def sample_next(logits: torch.Tensor, previous: torch.Tensor | None, *, top_k: int | None = None,
                top_p: float | None = None, temperature: float = 1.0, repetition_penalty: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per batch row, shape (B, 1) int64. ``logits`` is modified in place by the penalty."""
    apply_repetition_penalty(logits, previous, repetition_penalty)
    probs = torch.softmax(filter_logits(logits, top_k, top_p, temperature), dim=-1)
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)
    return torch.argmax(probs / race, dim=-1, keepdim=True)
