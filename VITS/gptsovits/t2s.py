"""Text2SemanticDecoder: the GPT of GPT-SoVITS v2 (phonemes + BERT features + prompt -> semantic tokens).

A 24-layer post-LayerNorm transformer over the concatenation [text ; audio]. Text positions attend to all
text positions only; audio positions attend to all text plus the causal audio prefix. Parameter names
match the original ``Text2SemanticDecoder`` so the ``.ckpt`` (minus its ``model.`` prefix) loads strictly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from VITS.gptsovits.sampling import sample_next


@dataclass(frozen=True)
class T2SConfig:
    """The ``config["model"]`` section of the s1 checkpoint (defaults: s1longer-v2.yaml)."""

    vocab_size: int = 1025  # semantic codes + EOS
    phoneme_vocab_size: int = 732  # the v2 symbol table
    embedding_dim: int = 512
    hidden_dim: int = 512
    head: int = 16
    n_layer: int = 24
    EOS: int = 1024
    bert_dim: int = 1024  # chinese-roberta-wwm-ext-large hidden size

    @classmethod
    def from_dict(cls, model: dict) -> T2SConfig:
        keys = cls.__dataclass_fields__
        return cls(**{k: model[k] for k in keys if k in model})


def sine_table(length: int, dim: int) -> torch.Tensor:
    """The sinusoidal table (1, length, dim), built in float32 like the original so rounding agrees."""
    pos = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe.unsqueeze(0)


class TokenEmbedding(nn.Module):
    """An embedding kept one level down (``.word_embeddings``) to match the checkpoint's key names."""

    def __init__(self, dim: int, vocab: int):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)


class ScaledSinePosition(nn.Module):
    """x + alpha * sinusoid(position); alpha is learned. The table is not a parameter (not in the file)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))
        self._pe = sine_table(4000, dim)

    def table(self, length: int, device: torch.device | None = None) -> torch.Tensor:
        if self._pe.size(1) < length:
            self._pe = sine_table(max(length, 2 * self._pe.size(1)), self.dim)
        if device is not None and self._pe.device != device:  # not a buffer: .to(cuda) leaves it behind
            self._pe = self._pe.to(device)
        return self._pe

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        pe = self.table(start + x.size(1), x.device)[:, start:start + x.size(1)]
        return x + self.alpha * pe.to(x.dtype)


class SelfAttention(nn.Module):
    """Fused-QKV attention with the parameter layout of ``nn.MultiheadAttention``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)  # a usable untrained model; checkpoints overwrite it
        nn.init.zeros_(self.in_proj_bias)

    def forward(self, x: torch.Tensor, cache: list | None, allowed: torch.Tensor | None) -> torch.Tensor:
        """``cache`` is a two-slot list [k, v] extended in place; ``allowed`` is True where a query may look."""
        b, t, d = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=1)
                v = torch.cat([cache[1], v], dim=1)
            cache[0], cache[1] = k, v

        def heads(z):
            return z.view(b, z.size(1), self.heads, -1).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=allowed)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class DecoderLayer(nn.Module):
    """Post-LN block: x = LN(x + attn(x)); x = LN(x + MLP(x)). Dropout is 0 at inference."""

    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = SelfAttention(dim, heads)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x, cache=None, allowed=None):
        x = self.norm1(x + self.self_attn(x, cache, allowed))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class LayerStack(nn.Module):
    """Holds ``layers`` so keys read ``h.layers.N.*`` as in the checkpoint."""

    def __init__(self, n: int, dim: int, heads: int, ffn: int):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn) for _ in range(n))

    def forward(self, x, caches=None, allowed=None):
        for i, layer in enumerate(self.layers):
            x = layer(x, None if caches is None else caches[i], allowed)
        return x


@dataclass
class T2SResult:
    """``tokens``: what the original webui hands to SoVITS (``y[:, -idx:]``). ``y``: prompt + all new tokens.
    ``idx``: what upstream ``infer_panel`` returns (the last step, or 0 without a prompt)."""

    tokens: torch.Tensor  # (1, n) int64
    y: torch.Tensor
    idx: int
    stopped_by_eos: bool
    step_logits: list[torch.Tensor]


class Text2SemanticDecoder(nn.Module):
    """The GPT. ``teacher_forced_logits`` scores a known continuation; ``generate`` samples one."""

    def __init__(self, config: T2SConfig = T2SConfig()):
        super().__init__()
        c = self.config = config
        if c.EOS != c.vocab_size - 1:
            raise ValueError(f"T2S config: EOS ({c.EOS}) must be the last id (vocab_size - 1 = {c.vocab_size - 1})")
        self.bert_proj = nn.Linear(c.bert_dim, c.embedding_dim)
        self.ar_text_embedding = TokenEmbedding(c.embedding_dim, c.phoneme_vocab_size)
        self.ar_text_position = ScaledSinePosition(c.embedding_dim)
        self.ar_audio_embedding = TokenEmbedding(c.embedding_dim, c.vocab_size)
        self.ar_audio_position = ScaledSinePosition(c.embedding_dim)
        self.h = LayerStack(c.n_layer, c.hidden_dim, c.head, c.hidden_dim * 4)
        self.ar_predict_layer = nn.Linear(c.hidden_dim, c.vocab_size, bias=False)

    # -- pieces ---------------------------------------------------------------------------------------
    def embed_text(self, phoneme_ids: torch.Tensor, bert_feature: torch.Tensor) -> torch.Tensor:
        """phoneme_ids (B, T) and bert_feature (B, 1024, T) -> (B, T, D)."""
        x = self.ar_text_embedding(phoneme_ids) + self.bert_proj(bert_feature.transpose(1, 2))
        return self.ar_text_position(x)

    def embed_audio(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.ar_audio_position(self.ar_audio_embedding(tokens), start)

    @staticmethod
    def prefix_mask(x_len: int, y_len: int, device=None) -> torch.Tensor:
        """(L, L) bool, True = may attend: text rows see text; audio rows see text + causal audio."""
        allowed = torch.zeros(x_len + y_len, x_len + y_len, dtype=torch.bool, device=device)
        allowed[:, :x_len] = True
        allowed[x_len:, x_len:] = torch.ones(y_len, y_len, dtype=torch.bool, device=device).tril()
        return allowed

    # -- scoring --------------------------------------------------------------------------------------
    @torch.no_grad()
    def teacher_forced_logits(self, phoneme_ids, bert_feature, audio_tokens) -> torch.Tensor:
        """Logits (B, y_len, vocab) at every audio position; row j predicts audio token j + 1."""
        x = self.embed_text(phoneme_ids, bert_feature)
        y = self.embed_audio(audio_tokens)
        allowed = self.prefix_mask(x.size(1), y.size(1), x.device)
        dec = self.h(torch.cat([x, y], dim=1), allowed=allowed)
        return self.ar_predict_layer(dec[:, x.size(1):])

    # -- generation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, phoneme_ids: torch.Tensor, prompt: torch.Tensor | None, bert_feature: torch.Tensor, *,
                 top_k: int | None = 15, top_p: float | None = 1.0, temperature: float = 1.0,
                 repetition_penalty: float = 1.35, early_stop_num: int = -1, max_steps: int = 1500,
                 min_steps: int = 11, generator: torch.Generator | None = None,
                 keep_step_logits: bool = False) -> T2SResult:
        """Sample semantic tokens after ``prompt`` (1, P) until EOS or ``early_stop_num`` new tokens.

        Reproduces ``infer_panel_naive`` including its quirks: EOS is not allowed for the first
        ``min_steps`` steps; the stop test runs after the token is appended, so an early stop yields
        early_stop_num + 1 tokens of which the webui keeps the last ``idx`` (dropping the first).
        Without a prompt (the webui's reference-free mode) ``idx`` is 0 and every token is kept."""
        if phoneme_ids.size(0) != 1:
            raise ValueError("generate() decodes one sentence at a time (batch size 1)")
        x = self.embed_text(phoneme_ids, bert_feature)
        ref_free = prompt is None
        if ref_free:
            prompt = torch.zeros(1, 0, dtype=torch.long, device=x.device)
        prefix_len = prompt.size(1)
        xy = torch.cat([x, self.embed_audio(prompt)], dim=1)
        allowed = self.prefix_mask(x.size(1), prefix_len, x.device)
        caches = [[None, None] for _ in self.h.layers]
        y = prompt.long()
        step_logits: list[torch.Tensor] = []
        stopped_by_eos = False
        idx = 0
        for idx in range(max_steps):
            dec = self.h(xy, caches, allowed)
            allowed = None  # after the prompt, one new query attends to the whole cache
            logits = self.ar_predict_layer(dec[:, -1])
            if keep_step_logits:
                step_logits.append(logits[0].clone())
            if idx < min_steps:
                logits = logits[:, :-1]  # no EOS yet (at least ~0.4 s of speech)
            token = sample_next(logits, y, top_k=top_k, top_p=top_p, temperature=temperature,
                                repetition_penalty=repetition_penalty, generator=generator)
            y = torch.cat([y, token], dim=1)
            stop = early_stop_num != -1 and (y.size(1) - prefix_len) > early_stop_num
            if int(torch.argmax(logits, dim=-1)[0]) == self.config.EOS or int(token[0, 0]) == self.config.EOS:
                stop, stopped_by_eos = True, True
                y = y[:, :-1]
            if stop or idx == max_steps - 1:
                break
            xy = self.embed_audio(y[:, -1:], start=prefix_len + idx)
        if y.size(1) == 0:  # nothing at all (no prompt, immediate EOS): one silent code, as upstream
            y = torch.zeros(1, 1, dtype=torch.long, device=y.device)
        if ref_free:
            idx = 0  # upstream's ref_free mode returns idx 0, so the webui's y[:, -idx:] keeps every token
        tokens = y[:, -idx:] if idx > 0 else y[:, prefix_len:]
        return T2SResult(tokens=tokens, y=y, idx=idx, stopped_by_eos=stopped_by_eos, step_logits=step_logits)
