"""The LM head and cross-entropy in one op, without the (N, V) logits.

    loss = mean over rows with target != ignore_index of  logsumexp(h W^T) - (h W^T)[target]

For a training step the logits are only a way to the loss: at GPT-2 size (V 50257, N = 8 x
1024 rows) they are 1.6 GB in float32, written, softmaxed, read back for the backward and
filled again for its gradient. Here the rows go in chunks of `chunk`; for each chunk the
logits (chunk, V) live only while we take

    d loss / d logits = (softmax(logits) - onehot(target)) / n_valid     (chunk, V)
    dh[chunk]  = g W                                                    (chunk, C)
    dW        += g^T h[chunk]                                           (V, C)

in the forward pass, and the backward pass only scales the stored dh, dW by the incoming
gradient (so the op must be the last thing before the loss's backward, as it is in training).
Same three matmuls as the plain head; no logits tensor, no log_softmax backward.
`linear_cross_entropy_ref` is the plain version, the spec the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # targets with this value are not scored (padding, Q&A prompts); F.cross_entropy's default


def linear_cross_entropy_ref(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """h: (N, C), weight: (V, C), targets: (N,) -> mean cross-entropy of h @ weight.T."""
    return F.cross_entropy((h @ weight.t()).float(), targets, ignore_index=ignore_index)


MAX_CHUNKS = 32  # torch.compile unrolls the loop: keep the graph small


def default_chunk(n_rows: int, vocab_size: int, device_type: str = "cpu") -> int:
    """Rows per chunk: ~4M logits (16 MB float32, about a CPU's L3) on CPU; ~64M on GPU, on the
    reasoning (not measured for this op) that fewer, larger matmuls run nearer peak there; never
    more than MAX_CHUNKS chunks."""
    budget = (1 << 26) if device_type == "cuda" else (1 << 22)
    return max(64, budget // vocab_size, -(-n_rows // MAX_CHUNKS))


class LinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, targets, ignore_index: int, chunk: int, need_grad: bool):
        device = h.device.type
        # under autocast, run the matmuls in its dtype (as nn.Linear would) and the softmax in float32
        dt = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h.dtype
        with torch.autocast(device, enabled=False):
            hc_all, w = h.to(dt), weight.to(dt)
            valid = targets != ignore_index
            n = valid.sum().clamp(min=1).to(torch.float32)
            safe = torch.where(valid, targets, 0)  # (N,) a real index where ignored
            loss = torch.zeros((), device=h.device, dtype=torch.float32)
            dh = torch.empty_like(h) if need_grad else None
            dw = torch.zeros_like(weight, dtype=torch.float32) if need_grad else None
            for s in range(0, h.shape[0], chunk):
                hc = hc_all[s : s + chunk]  # (c, C)
                logits = (hc @ w.t()).float()  # (c, V)
                lse = torch.logsumexp(logits, dim=-1)  # (c,)
                tc, vc = safe[s : s + chunk], valid[s : s + chunk]
                picked = logits.gather(1, tc[:, None])[:, 0]  # (c,)
                loss += torch.where(vc, lse - picked, 0.0).sum()
                if need_grad:
                    g = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                    g[torch.arange(len(tc), device=g.device), tc] -= 1.0
                    g *= (vc.to(torch.float32) / n)[:, None]  # ignored rows get no gradient
                    g = g.to(dt)
                    dh[s : s + chunk] = g @ w
                    dw += (g.t() @ hc).float()
        if need_grad:
            ctx.save_for_backward(dh, dw.to(weight.dtype))
        return loss / n

    @staticmethod
    def backward(ctx, grad_loss):
        dh, dw = ctx.saved_tensors
        return dh * grad_loss.to(dh.dtype), dw * grad_loss.to(dw.dtype), None, None, None, None


def linear_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    chunk: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of h @ weight.T against targets; h: (N, C), weight: (V, C), targets: (N,)."""
    if h.dim() != 2 or weight.dim() != 2 or h.shape[1] != weight.shape[1] or targets.shape != h.shape[:1]:
        raise ValueError(
            f"linear_cross_entropy: expected h (N, C), weight (V, C), targets (N,); got "
            f"{tuple(h.shape)}, {tuple(weight.shape)}, {tuple(targets.shape)}"
        )
    need_grad = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    return LinearCrossEntropyFunction.apply(
        h, weight, targets, ignore_index, chunk or default_chunk(h.shape[0], weight.shape[0], h.device.type), need_grad
    )
