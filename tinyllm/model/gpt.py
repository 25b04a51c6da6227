"""The GPT: token embedding, pre-norm transformer blocks, final LayerNorm, tied LM head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import warn_once
from .attention import KVCache, SlotCache, check_triton_backend, resolve_attention
from .block import Block
from .config import ModelConfig
from .decode_step import native_step
from .loss import IGNORE_INDEX, linear_cross_entropy
from .packed_linear import packed_linear, plain_linear
from .positions import Rotary, sinusoidal_table

# forward_rows pads its rows to a multiple of this. Measured on this CPU's MKL (torch 2.13): a row of
# a float32 matmul comes out bit-identical whatever the other rows are for every row count that is
# a multiple of 4 (1 or 2 threads), but 1-3 rows take other kernels (gemv) with other rounding.
# Padding makes a sequence's logits independent of how many others share its decode step
# (tests/test_serve_engine.py holds this, which is what lets batching never change an answer).
# forward_rows' linears go through oneDNN where it can (model/packed_linear.py), which gave the same
# bits for every row count; the padding stays for F.linear (MKL), and costs oneDNN little (a 4-row call
# measured within 10% of a 1-row one on demo's and tiny's layers).
ROW_QUANTUM = 4


class TinyLLM(nn.Module):
    def __init__(self, config: ModelConfig, device: torch.device | str | None = None):
        super().__init__()
        self.config = config
        self.packed_inference = False  # pack_for_inference()
        self.backend = resolve_attention(config.attention, device)
        if self.backend == "triton":
            for note in check_triton_backend(config.dropout, device):
                warn_once(note)
        C = config.d_model
        self.tok_emb = nn.Embedding(config.vocab_size, C)
        if config.pos_emb == "learned":
            self.pos_emb = nn.Embedding(config.context_length, C)
        elif config.pos_emb == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_table(config.context_length, C), persistent=False)
        self.rotary = Rotary(config.head_dim, config.context_length) if config.pos_emb == "rope" else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i, self.backend) for i in range(config.n_layers))
        self.ln_f = nn.LayerNorm(C, bias=config.bias)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layers) so the stream's variance stays put
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))
        if device is not None:
            self.to(device)

    @staticmethod
    def _init_weights(m: nn.Module):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, counted once (the tied head is the embedding)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.tok_emb.weight.numel()
            if self.config.pos_emb == "learned":
                n -= self.pos_emb.weight.numel()
        return n

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward): 6N plus attention's 12 * L * C * T (PaLM appendix B)."""
        cfg = self.config
        return (
            6 * self.num_params(non_embedding=True)
            + 6 * cfg.vocab_size * cfg.d_model
            + 12 * cfg.n_layers * cfg.d_model * cfg.context_length
        )

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        return_logits: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """idx: (B, T) token ids -> logits (B, T, V), and the mean cross-entropy over
        targets != IGNORE_INDEX when targets (B, T) are given.

        With a KV cache, idx holds only the new tokens; they sit at positions cache.length...
        With targets and return_logits=False (training), the logits are never formed: the head
        and the loss run as one chunked op (model/loss.py) and logits come back as None.
        """
        T = idx.shape[1]
        start = cache.length if cache is not None else 0
        if start + T > self.config.context_length:
            raise ValueError(f"sequence of {start + T} tokens exceeds context_length {self.config.context_length}")
        x = self.tok_emb(idx)  # (B, T, C)
        if self.config.pos_emb == "learned":
            x = x + self.pos_emb(torch.arange(start, start + T, device=idx.device))
        elif self.config.pos_emb == "sinusoidal":
            x = x + self.pos_table[start : start + T].to(x.dtype)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, self.rotary, cache, start)
        if cache is not None:
            cache.length += T
        x = self.ln_f(x)
        if targets is not None and not return_logits:
            loss = linear_cross_entropy(
                x.reshape(-1, x.size(-1)), self.lm_head.weight, targets.reshape(-1), ignore_index=IGNORE_INDEX
            )
            return None, loss
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX
            )
        return logits, loss

    @torch.no_grad()
    def forward_rows(self, tokens: list[int], caches: list[KVCache]) -> torch.Tensor:
        """One decode step for several sequences at once, each with its own cache and position:
        tokens[i] is the next token of the sequence in caches[i] (a KVCache of batch 1, or a
        SlotCache.view), at position caches[i].length. -> logits (len(tokens), V); every cache
        advances by one.

        A row's logits are the same bits whichever other rows share the step (and the same as
        forward_rows with it alone). On a packed float32 CPU model the whole step is one C++ call
        (model/decode_step.py, whose matmuls sum every output in one fixed order); otherwise it is
        the torch code below, whose rows are padded to a multiple of ROW_QUANTUM for that, and which
        is the C++ step's reference (tests/test_decode_step.py). The slow, obvious twin of both is
        forward() on each sequence with its own cache (equal within float32 rounding:
        tests/test_serve_engine.py).
        """
        B = len(tokens)
        assert len(caches) == B and B > 0, f"forward_rows: {B} tokens for {len(caches)} caches"
        pos = [c.length for c in caches]
        if max(pos) + 1 > self.config.context_length:
            raise ValueError(f"sequence of {max(pos) + 1} tokens exceeds context_length {self.config.context_length}")
        if self.packed_inference and (step := native_step(self)) is not None:
            logits = step(tokens, caches)  # the whole step in C++ (model/decode_step.py); this path is its reference
            if logits is not None:
                return logits
        Bp = -(-B // ROW_QUANTUM) * ROW_QUANTUM
        device = self.tok_emb.weight.device
        idx = torch.tensor(tokens + [0] * (Bp - B), device=device)[:, None]  # (Bp, 1); padding rows read token 0
        where = torch.tensor(pos + [0] * (Bp - B), device=device)[:, None]  # (Bp, 1) absolute positions
        x = self.tok_emb(idx)  # (Bp, 1, C)
        if self.config.pos_emb == "learned":
            x = x + self.pos_emb(where)
        elif self.config.pos_emb == "sinusoidal":
            x = x + self.pos_table[where].to(x.dtype)
        x = self.drop(x)
        linear = packed_linear if self.packed_inference else plain_linear
        for block in self.blocks:  # Block.forward, with per-row attention
            x = x + block.attn.forward_rows(block.ln1(x), self.rotary, caches, where[:, 0], linear)
            x = x + block.ffn(block.ln2(x), linear=linear)
        for c in caches:
            c.length += 1
        return linear(self.lm_head, self.ln_f(x))[:B, 0]  # (B, V)

    @torch.no_grad()
    def prefill(self, tokens: list[int], cache: KVCache) -> torch.Tensor:
        """Run a prompt (or the tokens after what `cache` holds) into the cache -> the logits of its
        last position (1, V). The first step of `generate_ids` and of each `tinyllm serve` request, so
        both give a prompt the same bits. On a packed float32 CPU model it is the C++ step with the
        prompt's tokens as rows at consecutive positions (model/decode_step.py); else forward()."""
        n = cache.length + len(tokens)
        if not tokens or n > self.config.context_length:
            raise ValueError(
                f"prefill of {len(tokens)} tokens after {cache.length}: context_length is {self.config.context_length}"
            )
        if self.packed_inference and (step := native_step(self)) is not None:
            logits = step.prefill(tokens, cache)
            if logits is not None:
                return logits
        device = self.tok_emb.weight.device
        return self(torch.tensor([tokens], device=device), cache=cache)[0][:, -1, :]

    def pack_for_inference(self) -> TinyLLM:
        """From now on run forward_rows and prefill (`generate_ids`, `tinyllm serve`) as one C++ call
        over weights packed once (model/decode_step.py: 1.2-7x the torch step's speed here,
        benchmarks/bench_decode_step.py), and where that cannot run, the linears through oneDNN with
        each weight packed once (model/packed_linear.py); both give the same bits for any row count.
        For a model whose weights no longer change (serve, generate, chat call it): packed copies
        follow a weight replaced or changed in place through an op that moves its version counter,
        but fused optimizers (AdamW(fused=True), which the trainer uses) update weights without
        moving it, so never train a packed model."""
        self.packed_inference = True
        return self

    def new_slot_cache(self, slots: int) -> SlotCache:
        """KV storage for `slots` sequences of up to context_length tokens each (see SlotCache)."""
        p = next(self.parameters())
        cfg = self.config
        return SlotCache(cfg.n_layers, slots, cfg.n_heads, cfg.context_length, cfg.head_dim, p.device, p.dtype)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        p = next(self.parameters())
        cfg = self.config
        return KVCache(cfg.n_layers, batch, cfg.n_heads, max_len or cfg.context_length, cfg.head_dim, p.device, p.dtype)

    def configure_optimizer(self, lr: float, weight_decay: float, betas=(0.9, 0.95)):
        """AdamW with weight decay on matrices (dim >= 2) only; biases, norms stay undecayed."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        try:  # fused: one kernel for all parameters (CUDA, and CPU since torch 2.4) instead of foreach's many
            return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
        except (RuntimeError, TypeError):  # this device or torch has no fused AdamW
            return torch.optim.AdamW(groups, lr=lr, betas=betas)
