"""Multi-head attention with a fixed Q/K/V width and an elastic head count and input widths.

HAT keeps the Q/K/V projections at `qkv_dim` for every subnet: fewer heads only change the
head size. The query and key/value input widths (the subnet's embed dims) and the output
width are front slices. The same `MultiheadAttention` forward serves the elastic layer and
the static copy `to_static()` returns, so an exported subnet computes exactly what the
supernet computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supernet.ops.elastic_linear import ElasticLinear

Cache = dict[str, torch.Tensor]


class MultiheadAttention(nn.Module):
    """Scaled dot-product attention over any four projection modules (batch-first).

    Args:
        q_proj, k_proj, v_proj: project the query / key / value inputs to `qkv_dim`.
        out_proj: projects `qkv_dim` back to the query width.
        num_heads: heads; the head size is `qkv_dim // num_heads`.
        qkv_dim: width of the Q/K/V projections.
        dropout: dropout on the attention probabilities.
    """

    def __init__(
        self,
        q_proj: nn.Module,
        k_proj: nn.Module,
        v_proj: nn.Module,
        out_proj: nn.Module,
        num_heads: int,
        qkv_dim: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = q_proj, k_proj, v_proj, out_proj
        self.qkv_dim = qkv_dim
        self.num_heads = num_heads
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.qkv_dim // self.num_heads).transpose(1, 2)

    def keys_values(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a (B, S, E) source, split into heads: (B, heads, S, head size)."""
        return self._split(self.k_proj(source)), self._split(self.v_proj(source))

    def forward(
        self,
        query: torch.Tensor,
        memory: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
    ) -> torch.Tensor:
        """Attend from `query` (B, T, D) to `memory` (B, S, E), or to itself when None.

        Args:
            key_padding_mask: (B, S) bool, True at padded keys.
            attn_mask: (T, S) additive float mask (the causal mask of a decoder).
            cache: incremental state. Self-attention appends the new keys/values to it;
                attention over a memory computes them once and reuses them afterwards.
        """
        if cache is not None and memory is not None and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k, v = self.keys_values(query if memory is None else memory)
            if cache is not None:
                if memory is None and "k" in cache:
                    k = torch.cat([cache["k"], k], dim=2)
                    v = torch.cat([cache["v"], v], dim=2)
                # contiguous once here, or every later step's matmul copies them again
                k, v = k.contiguous(), v.contiguous()
                cache["k"], cache["v"] = k, v
        head_dim = self.qkv_dim // self.num_heads
        q = self._split(self.q_proj(query) * head_dim**-0.5)
        scores = torch.matmul(q, k.transpose(-1, -2))
        if attn_mask is not None:
            scores = scores + attn_mask
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        probs = F.softmax(scores, dim=-1)
        probs = F.dropout(probs, p=self.dropout, training=self.training)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(query.shape[0], -1, self.qkv_dim)
        return self.out_proj(out)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, qkv_dim={self.qkv_dim}"


class ElasticMultiheadAttention(MultiheadAttention):
    """Attention whose head count, query width and key/value width are chosen per subnet.

    Args:
        query_dim: largest query (and output) width.
        kv_dim: largest key/value input width (the encoder width for encoder-decoder attention).
        qkv_dim: fixed width of the Q/K/V projections.
        max_heads: largest head count; every head count must divide `qkv_dim`.
        dropout: dropout on the attention probabilities.
    """

    q_proj: ElasticLinear
    k_proj: ElasticLinear
    v_proj: ElasticLinear
    out_proj: ElasticLinear

    def __init__(
        self, query_dim: int, kv_dim: int, qkv_dim: int, max_heads: int, dropout: float = 0.0
    ) -> None:
        super().__init__(
            ElasticLinear(query_dim, qkv_dim),
            ElasticLinear(kv_dim, qkv_dim),
            ElasticLinear(kv_dim, qkv_dim),
            ElasticLinear(qkv_dim, query_dim),
            num_heads=max_heads,
            qkv_dim=qkv_dim,
            dropout=dropout,
        )
        self.max_heads = max_heads

    def set_active(self, query_dim: int, kv_dim: int, heads: int) -> None:
        if heads > self.max_heads or self.qkv_dim % heads:
            raise ValueError(f"{heads} heads do not fit qkv_dim={self.qkv_dim}")
        self.q_proj.set_active(in_features=query_dim)
        self.k_proj.set_active(in_features=kv_dim)
        self.v_proj.set_active(in_features=kv_dim)
        self.out_proj.set_active(out_features=query_dim)
        self.num_heads = heads

    def to_static(self) -> MultiheadAttention:
        """A plain `MultiheadAttention` over `nn.Linear` copies of the active slices."""
        return MultiheadAttention(
            self.q_proj.to_static(),
            self.k_proj.to_static(),
            self.v_proj.to_static(),
            self.out_proj.to_static(),
            num_heads=self.num_heads,
            qkv_dim=self.qkv_dim,
            dropout=self.dropout,
        )
