"""Long short-term transformer of DeAOT: gated propagation layers with a visual and an identity branch.

Token layout (B, L, C), L = h * w row-major. Names match the official checkpoints (``LSTT.*``).
"""

import typing

import torch
import torch.nn.functional as F
from torch import nn

from samtrack_ops.tracker.attention import GlobalGatedPropagation
from samtrack_ops.tracker.local_attention import LocalGatedPropagation
from samtrack_ops.tracker.normalization import TokenGroupNorm


class LayerMemory(typing.NamedTuple):
    """What one layer remembers of one or more frames, frames concatenated along tokens.

    key: (B, N, heads * d_att); value: (B, N, 4 * d_model), the visual value then the identity
    value (2 * d_model each), kept concatenated as the attention consumes them.
    """

    key: torch.Tensor
    value: torch.Tensor


class PendingMemory(typing.NamedTuple):
    """A layer's view of the frame just propagated, before its mask is known.

    id_input is the normalised identity-branch input (None in the first layer); it is fused with
    the mask's ID embedding by ``GatedPropagationLayer.fuse_identity`` to give a LayerMemory.
    """

    key: torch.Tensor
    value: torch.Tensor
    id_input: typing.Optional[torch.Tensor]


class GatedPropagationLayer(nn.Module):
    """One DeAOT layer: long- and short-term gated propagation, then gated self-propagation."""

    def __init__(self, d_model, self_heads, att_heads, layer_index, expand_ratio=2.0, max_distance=7):
        super().__init__()
        expanded = int(d_model * expand_ratio)
        d_att = d_model // 2 if att_heads == 1 else d_model // att_heads
        self.d_model = d_model
        self.split_qv = [d_att * att_heads, expanded]
        self.norm1 = nn.LayerNorm(d_model)
        self.linear_QV = nn.Linear(d_model, d_att * att_heads + expanded)
        self.linear_U = nn.Linear(d_model, expanded)
        if layer_index == 0:
            self.linear_ID_V = nn.Linear(d_model, expanded)
        else:
            self.id_norm1 = nn.LayerNorm(d_model)
            self.linear_ID_V = nn.Linear(d_model * 2, expanded)
            self.linear_ID_U = nn.Linear(d_model, expanded)
        self.long_term_attn = GlobalGatedPropagation(
            d_model, d_model * 2, att_heads, d_att, use_linear=False, expand_ratio=expand_ratio
        )
        self.short_term_attn = LocalGatedPropagation(
            att_heads, d_att, d_model * 2, max_distance=max_distance, expand_ratio=expand_ratio
        )
        self.norm2 = nn.LayerNorm(d_model)
        self.id_norm2 = nn.LayerNorm(d_model)
        self.self_attn = GlobalGatedPropagation(
            d_model * 2, d_model * 2, self_heads, d_att, use_linear=True, expand_ratio=expand_ratio
        )

    def fuse_identity(self, pending, id_emb):
        """Turns a PendingMemory into a LayerMemory with the ID embedding id_emb (B, L, d_model)."""
        if pending.id_input is None:
            id_value = F.silu(self.linear_ID_V(id_emb))
        else:
            id_value = F.silu(self.linear_ID_V(torch.cat([pending.id_input, id_emb], dim=2)))
        return LayerMemory(pending.key, torch.cat([pending.value, id_value], dim=-1))

    def forward(self, tokens, id_tokens, long_term, short_term, size_2d, id_emb=None):
        """Propagates one frame.

        tokens: (B, L, d_model) visual branch; id_tokens: (B, L, d_model) or None (first layer).
        With id_emb (B, L, d_model) the frame attends to itself (reference frame) and the memories
        are ignored; otherwise it attends to long_term (LayerMemory over N tokens) and short_term
        (LayerMemory over L tokens). Returns (tokens, id_tokens, PendingMemory, LayerMemory of this
        frame with id_emb fused in, or None without id_emb).
        """
        normed = self.norm1(tokens)
        query, value = torch.split(self.linear_QV(normed), self.split_qv, dim=2)
        value = F.silu(value)
        gate = self.linear_U(normed)
        if id_tokens is None:
            id_input = None
            gate = torch.cat([F.silu(gate), torch.ones_like(gate)], dim=-1)
            id_tokens = 0
        else:
            id_input = self.id_norm1(id_tokens)
            gate = F.silu(torch.cat([gate, self.linear_ID_U(id_input)], dim=-1))
        pending = PendingMemory(query, value, id_input)
        own_memory = None
        if id_emb is not None:
            long_term = short_term = own_memory = self.fuse_identity(pending, id_emb)

        long_out = self.long_term_attn(query, long_term.key, long_term.value, gate, size_2d)
        short_out = self.short_term_attn(query, short_term.key, short_term.value, gate, size_2d)
        propagated = long_out + short_out
        tokens = tokens + propagated[..., : self.d_model]
        id_tokens = id_tokens + propagated[..., self.d_model :]

        both = torch.cat([self.norm2(tokens), self.id_norm2(id_tokens)], dim=-1)
        self_out = self.self_attn(both, both, both, both, size_2d)
        tokens = tokens + self_out[..., : self.d_model]
        id_tokens = id_tokens + self_out[..., self.d_model :]
        return tokens, id_tokens, pending, own_memory


class DualBranchLSTT(nn.Module):
    """Stack of gated propagation layers followed by a 2-group GroupNorm of [visual, identity]."""

    def __init__(self, num_layers, d_model, self_heads, att_heads, expand_ratio=2.0, max_distance=7):
        super().__init__()
        self.layers = nn.ModuleList(
            GatedPropagationLayer(d_model, self_heads, att_heads, index, expand_ratio, max_distance)
            for index in range(num_layers)
        )
        self.decoder_norms = nn.ModuleList([TokenGroupNorm(d_model * 2, groups=2)])

    def forward(self, tokens, long_term, short_term, size_2d, id_emb=None):
        """tokens: (B, L, d_model); long_term / short_term: one LayerMemory per layer (or None with
        id_emb, the reference-frame pass). Returns the output (B, L, 2 * d_model), a PendingMemory per
        layer and, with id_emb, the frame's own LayerMemory per layer (else None).
        """
        id_tokens = None
        pending, own_memory = [], []
        for index, layer in enumerate(self.layers):
            tokens, id_tokens, layer_pending, layer_memory = layer(
                tokens,
                id_tokens,
                None if long_term is None else long_term[index],
                None if short_term is None else short_term[index],
                size_2d,
                id_emb=id_emb,
            )
            pending.append(layer_pending)
            own_memory.append(layer_memory)
        output = self.decoder_norms[0](torch.cat([tokens, id_tokens], dim=-1))
        return output, pending, (own_memory if id_emb is not None else None)
