"""Gene-expression encoders: an MLP over a fixed panel and a gene-token set transformer over any panel.

Inputs are what :class:`scibind_spatial_omics.reader.ExpressionReader` yields, collated: ``float[B, G]``
with ``NaN`` for genes a record's panel did not measure. :class:`GeneSetEncoder` also takes
``{"values": float[B, G], "genes": int[G] or int[B, G]}`` (positions in its gene vocabulary), so one model
serves panels of different genes and sizes.
"""

from __future__ import annotations

import torch
from scibind.errors import ConfigError, ShapeError
from torch import nn

__all__ = ["GeneMLPEncoder", "GeneSetEncoder", "tiny_gene_mlp", "tiny_gene_set"]


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"encoder option {name!r} must be an integer >= 1, got {value!r}")


class GeneMLPEncoder(nn.Module):
    """An MLP over a fixed gene panel ``float[B, n_genes]`` (NaN = not measured, read as 0).

    Args:
        n_genes: Panel width.
        embed_dim: Output width.
        hidden_dim: Hidden width.
        n_layers: Linear layers (1 = linear map).
        dropout: Dropout after hidden layers.
        use_mask: Also feed the presence mask (for union panels where a 0 and "not measured" differ).
    """

    modality = "gene_expression"

    def __init__(
        self,
        n_genes: int,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        n_layers: int = 2,
        dropout: float = 0.1,
        use_mask: bool = False,
    ) -> None:
        super().__init__()
        _check_positive(n_genes=n_genes, embed_dim=embed_dim, hidden_dim=hidden_dim, n_layers=n_layers)
        self.n_genes = n_genes
        self.embed_dim = embed_dim
        self.use_mask = use_mask
        layers: list[nn.Module] = []
        width = n_genes * (2 if use_mask else 1)
        for _ in range(n_layers - 1):
            layers += [nn.Linear(width, hidden_dim), nn.LayerNorm(hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, embed_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        """Embed ``float[B, n_genes]``.

        Raises:
            ShapeError: Wrong width.
        """
        if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.shape[1] != self.n_genes:
            got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ShapeError(
                f"gene MLP expects [B, {self.n_genes}] (n_genes={self.n_genes}), got {got}; set the tower's "
                "encoder_kwargs.n_genes to the panel width, or use spatial_omics/gene-set for mixed panels"
            )
        weight = self.net[0].weight
        x = data.to(device=weight.device, dtype=weight.dtype)
        present = ~torch.isnan(x)
        x = torch.where(present, x, torch.zeros_like(x))
        if self.use_mask:
            x = torch.cat([x, present.to(x.dtype)], dim=1)
        return self.net(x)


class GeneSetEncoder(nn.Module):
    """Gene-token set transformer: token = gene embedding + value embedding, pooled by learnt latents.

    Each measured gene of a record is a token ``E[gene] + f(value)``; ``n_latents`` learnt queries
    cross-attend to the tokens (cost linear in the panel size, as in Perceiver / set-transformer PMA), then
    ``n_layers`` self-attention blocks mix the latents, whose mean is projected to ``embed_dim``. Unmeasured
    genes (NaN, or outside the given ``genes``) are masked out, so one model reads any subset of its
    vocabulary.

    Args:
        n_genes: Vocabulary size (genes the model knows; inputs index into it).
        embed_dim: Output width.
        dim: Token width.
        n_heads: Attention heads.
        n_latents: Learnt pooling queries.
        n_layers: Self-attention blocks over the latents.
        dropout: Attention/MLP dropout.
    """

    modality = "gene_expression"

    def __init__(
        self,
        n_genes: int,
        embed_dim: int = 256,
        dim: int = 128,
        n_heads: int = 4,
        n_latents: int = 8,
        n_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_positive(n_genes=n_genes, embed_dim=embed_dim, dim=dim, n_heads=n_heads, n_latents=n_latents)
        if dim % n_heads:
            raise ConfigError(f"encoder option 'dim' ({dim}) must be divisible by n_heads ({n_heads})")
        self.n_genes = n_genes
        self.embed_dim = embed_dim
        self.gene_embedding = nn.Embedding(n_genes, dim)
        self.value_embedding = nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, dim))
        self.token_norm = nn.LayerNorm(dim)
        self.latents = nn.Parameter(torch.randn(n_latents, dim) * dim**-0.5)
        self.pool = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        layer = nn.TransformerEncoderLayer(
            dim, n_heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False) if n_layers else None
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, embed_dim))

    def _inputs(self, data: torch.Tensor | dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.latents.device
        if isinstance(data, dict):
            values, genes = data["values"], data["genes"]
            if genes.dim() == 1:
                genes = genes.expand(values.shape[0], -1)
        elif isinstance(data, torch.Tensor):
            values = data
            genes = torch.arange(values.shape[-1], device=values.device).expand(values.shape[0], -1)
        else:
            raise ShapeError(f"gene-set encoder expects a tensor or a dict, got {type(data).__name__}")
        if values.dim() != 2 or genes.shape != values.shape:
            raise ShapeError(
                f"gene-set encoder expects values [B, G] and genes [G] or [B, G], got {tuple(values.shape)} "
                f"and {tuple(genes.shape)}"
            )
        if genes.numel() and (int(genes.max()) >= self.n_genes or int(genes.min()) < 0):
            raise ShapeError(
                f"gene index out of range for a vocabulary of {self.n_genes} genes "
                f"(got max {int(genes.max())}); "
                "set encoder_kwargs.n_genes to the vocabulary size"
            )
        return values.to(device=device, dtype=self.latents.dtype), genes.to(device=device, dtype=torch.long)

    def forward(self, data: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        """Embed a batch of panels (see the class docstring for the input forms)."""
        values, genes = self._inputs(data)
        absent = torch.isnan(values)
        # A record with no measured gene would make attention softmax over nothing: keep one zero token.
        empty = absent.all(dim=1)
        if empty.any():
            absent = absent.clone()
            absent[empty, 0] = False
        values = torch.where(absent, torch.zeros_like(values), values)
        tokens = self.gene_embedding(genes) + self.value_embedding(values.unsqueeze(-1))
        tokens = self.token_norm(tokens)
        queries = self.latents.unsqueeze(0).expand(values.shape[0], -1, -1)
        pooled, _ = self.pool(queries, tokens, tokens, key_padding_mask=absent, need_weights=False)
        pooled = pooled + queries
        if self.blocks is not None:
            pooled = self.blocks(pooled)
        return self.out(pooled.mean(dim=1))


def tiny_gene_mlp(n_genes: int, embed_dim: int = 32) -> GeneMLPEncoder:
    """A one-hidden-layer gene MLP (hidden 64, no dropout) for tests and demos."""
    return GeneMLPEncoder(n_genes, embed_dim=embed_dim, hidden_dim=64, n_layers=2, dropout=0.0)


def tiny_gene_set(n_genes: int, embed_dim: int = 32) -> GeneSetEncoder:
    """A gene-set transformer with 16-wide tokens, 2 heads, 4 latents and 1 block, for tests."""
    return GeneSetEncoder(n_genes, embed_dim=embed_dim, dim=16, n_heads=2, n_latents=4, n_layers=1)
