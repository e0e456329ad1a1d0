"""Graph encoders over ``molecule_graph`` batches: GIN, GINE and a graph transformer (PyTorch Geometric).

Every encoder embeds the integer atom/bond codes of the :data:`~.schema.SCHEMA` (one embedding table per
column, summed, as OGB's ``AtomEncoder``), runs ``n_layers`` message-passing layers with residual
connections and pools atoms into one vector per molecule. ``forward_tokens`` returns the atom states padded
to ``[B, max_atoms, embed_dim]`` (and :meth:`GraphEncoder.token_mask` says which are real), for token-level
objectives. With ``motifs=True`` the encoder reads hierarchical graphs (:mod:`~.motifs`): atom states are
mean-pooled into their motifs, added to an embedding of the motif features, updated by a GIN layer over the
motif-motif edges, pooled per molecule and concatenated to the atom pooling; ``motif_tokens`` returns them
padded like the atom tokens. The schema digest is a buffer of the module, so loading weights trained with
another schema raises :class:`~.schema.SchemaMismatchError` instead of silently reading the wrong embedding
rows.
"""

from __future__ import annotations

from typing import Any

import torch
from scibind.errors import ConfigError, DataError
from torch import nn

from scibind_molecules.schema import SCHEMA, FeatureSchema, SchemaMismatchError

__all__ = [
    "CONVS",
    "FeatureEmbedding",
    "GraphEncoder",
    "SchemaBuffer",
    "gin",
    "gine",
    "gine_motif",
    "graph_transformer",
    "tiny_graph",
]

CONVS = ("gin", "gine", "transformer")
POOLINGS = ("mean", "sum", "mean+max")
TOKENS = ("atoms", "atoms+motifs")


class FeatureEmbedding(nn.Module):
    """Sum of one ``nn.Embedding`` per integer feature column.

    Args:
        dims: Number of codes per column.
        width: Embedding width.
    """

    def __init__(self, dims: list[int], width: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(d, width) for d in dims)
        for table in self.tables:
            nn.init.xavier_uniform_(table.weight)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """``int64[n, columns]`` -> ``float32[n, width]``."""
        if codes.dim() != 2 or codes.shape[1] != len(self.tables):
            raise DataError(
                f"expected integer features of shape [n, {len(self.tables)}], got {tuple(codes.shape)}; "
                "featurize molecules with scibind_molecules (the molecule_graph readers)"
            )
        out = self.tables[0](codes[:, 0])
        for j in range(1, len(self.tables)):
            out = out + self.tables[j](codes[:, j])
        return out


class SchemaBuffer(nn.Module):
    """Holds the featurization schema digest as a buffer; loading a different one raises.

    Args:
        schema: The schema the owning encoder was built for.
    """

    def __init__(self, schema: FeatureSchema = SCHEMA) -> None:
        super().__init__()
        self.schema = schema
        self.register_buffer("digest", torch.tensor(list(schema.digest.encode("ascii")), dtype=torch.uint8))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        stored = state_dict.get(prefix + "digest")
        if stored is not None and not torch.equal(stored.to(torch.uint8).cpu(), self.digest.cpu()):
            text = bytes(stored.to(torch.uint8).tolist()).decode("ascii", errors="replace")
            raise SchemaMismatchError(
                f"these weights were trained on graphs featurized with schema {text}, but this "
                f"scibind-molecules featurizes with schema {self.schema.digest}; install the "
                "scibind-molecules version that trained them, or retrain"
            )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


def _mlp(width: int) -> nn.Sequential:
    # LayerNorm rather than GIN's BatchNorm: a batch of one single-atom molecule still trains.
    return nn.Sequential(
        nn.Linear(width, 2 * width), nn.LayerNorm(2 * width), nn.ReLU(), nn.Linear(2 * width, width)
    )


class GraphEncoder(nn.Module):
    """A message-passing encoder of molecular graphs.

    Args:
        conv: ``"gin"`` (GIN, Xu et al. 2019; ignores bond features), ``"gine"`` (GIN with bond features, Hu
            et al. 2020) or ``"transformer"`` (graph transformer layers, Shi et al. 2021, with bond features
            in the attention).
        hidden_dim: Width of the atom states.
        n_layers: Message-passing layers.
        embed_dim: Output width.
        dropout: Dropout between layers.
        pooling: ``"mean"``, ``"sum"`` or ``"mean+max"`` (concatenated) over atoms.
        heads: Attention heads of the ``transformer`` layers.
        motifs: Also encode the motif level of hierarchical graphs (batches of :class:`~.motifs.MotifData`,
            e.g. from the reader with ``motifs=True`` or :func:`~.motifs.featurize_hierarchical`).
        tokens: What :meth:`forward_tokens` returns: ``"atoms"`` or ``"atoms+motifs"`` (needs ``motifs``;
            atoms and motifs interleaved: token ``2i`` is atom ``i``, token ``2i+1`` motif ``i``, the layout
            ``molecules/orma`` reads).

    Attributes:
        modality: ``"molecule_graph"``.
        embed_dim: Output width.
    """

    modality = "molecule_graph"

    def __init__(
        self,
        conv: str = "gine",
        hidden_dim: int = 256,
        n_layers: int = 4,
        embed_dim: int = 256,
        dropout: float = 0.1,
        pooling: str = "mean+max",
        heads: int = 4,
        motifs: bool = False,
        tokens: str = "atoms",
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GINConv, GINEConv, TransformerConv

        if conv not in CONVS:
            raise ConfigError(f"encoder option 'conv' must be one of {CONVS}, got {conv!r}")
        if pooling not in POOLINGS:
            raise ConfigError(f"encoder option 'pooling' must be one of {POOLINGS}, got {pooling!r}")
        if min(hidden_dim, n_layers, embed_dim, heads) < 1 or hidden_dim % heads:
            raise ConfigError(
                f"need hidden_dim, n_layers, embed_dim, heads >= 1 and hidden_dim divisible by heads; got "
                f"{hidden_dim}, {n_layers}, {embed_dim}, {heads}"
            )
        if tokens not in TOKENS or (tokens == "atoms+motifs" and not motifs):
            raise ConfigError(
                f"encoder option 'tokens' must be one of {TOKENS} ('atoms+motifs' needs motifs=True, e.g. "
                f"molecules/gine-motif), got {tokens!r} with motifs={motifs}"
            )
        self.tokens = tokens
        self.conv = conv
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.pooling = pooling
        self.schema = SchemaBuffer(SCHEMA)
        self.atoms = FeatureEmbedding(SCHEMA.atom_dims, hidden_dim)
        self.bonds = nn.ModuleList()
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(n_layers):
            if conv == "gin":
                layer: nn.Module = GINConv(_mlp(hidden_dim), train_eps=True)
            elif conv == "gine":
                layer = GINEConv(_mlp(hidden_dim), train_eps=True)
                self.bonds.append(FeatureEmbedding(SCHEMA.bond_dims, hidden_dim))
            else:
                layer = TransformerConv(
                    hidden_dim, hidden_dim // heads, heads=heads, edge_dim=hidden_dim, dropout=dropout
                )
                self.bonds.append(FeatureEmbedding(SCHEMA.bond_dims, hidden_dim))
            self.layers.append(layer)
            self.norms.append(nn.LayerNorm(hidden_dim))
        self.dropout = nn.Dropout(dropout)
        pooled = 2 * hidden_dim if pooling == "mean+max" else hidden_dim
        self.motifs = motifs
        if motifs:
            from scibind_molecules.motifs import MOTIF_DIMS

            self.motif_embedding = FeatureEmbedding(MOTIF_DIMS, hidden_dim)
            self.motif_layer = GINConv(_mlp(hidden_dim), train_eps=True)
            self.motif_norm = nn.LayerNorm(hidden_dim)
            pooled += hidden_dim
        self.head = nn.Linear(pooled, embed_dim)
        self.token_head = nn.Linear(hidden_dim, embed_dim)

    def _device(self) -> torch.device:
        return self.head.weight.device

    def atom_states(self, batch: Any) -> torch.Tensor:
        """Atom states after the last layer: ``float32[num_atoms, hidden_dim]``.

        Raises:
            DataError: ``batch`` is not a PyG batch of molecule graphs.
        """
        if not hasattr(batch, "x") or not hasattr(batch, "edge_index"):
            raise DataError(
                f"{type(self).__name__} expects a torch_geometric Batch of molecule graphs (the "
                f"molecule_graph collate), got {type(batch).__name__}"
            )
        batch = batch.to(self._device())
        h = self.atoms(batch.x)
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
            if self.conv == "gin":
                update = layer(h, batch.edge_index)
            else:
                update = layer(h, batch.edge_index, self.bonds[i](batch.edge_attr))
            h = h + self.dropout(torch.relu(norm(update)))
        return h

    def motif_states(self, batch: Any, h: torch.Tensor | None = None) -> torch.Tensor:
        """Motif states ``float32[num_motifs, hidden_dim]`` (needs ``motifs=True`` and hierarchical graphs).

        Raises:
            DataError: The batch has no motif nodes.
        """
        from torch_geometric.utils import scatter

        if not self.motifs:
            raise ConfigError("this encoder was built without motifs; build it with motifs=True")
        if "motif_x" not in batch or "atom_motif_index" not in batch:
            raise DataError(
                "motifs=True needs hierarchical graphs (motif_x, atom_motif_index, motif_edge_index): read "
                "molecules with the molecules/molecule reader's motifs=True, or use "
                "scibind_molecules.motifs.featurize_hierarchical"
            )
        if h is None:
            h = self.atom_states(batch)
        device = h.device
        atom, motif = batch.atom_motif_index.to(device)
        n_motifs = int(batch.motif_x.size(0))
        m = scatter(h[atom], motif, dim=0, dim_size=n_motifs, reduce="mean")
        m = m + self.motif_embedding(batch.motif_x.to(device))
        update = self.motif_layer(m, batch.motif_edge_index.to(device))
        return m + self.dropout(torch.relu(self.motif_norm(update)))

    def forward(self, batch: Any) -> torch.Tensor:
        """Embed molecules: ``float32[num_graphs, embed_dim]``."""
        h = self.atom_states(batch)
        return self._pooled(batch, h, self.motif_states(batch, h) if self.motifs else None)

    def forward_tokens(self, batch: Any) -> torch.Tensor:
        """Tokens ``float32[num_graphs, T, embed_dim]``, zero rows where :meth:`token_mask` is false.

        ``tokens="atoms"``: the atoms (``T`` = most atoms of a molecule). ``tokens="atoms+motifs"``: atoms and
        motifs interleaved (``T = 2·max(atoms, motifs)``; token ``2i`` atom ``i``, ``2i+1`` motif ``i``).
        """
        h = self.atom_states(batch)
        return self._tokens(batch, h, self.motif_states(batch, h) if self.tokens != "atoms" else None)

    def forward_with_tokens(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` and :meth:`forward_tokens` from one pass of the atom (and motif) layers."""
        h = self.atom_states(batch)
        m = self.motif_states(batch, h) if self.motifs or self.tokens != "atoms" else None
        return self._pooled(batch, h, m), self._tokens(batch, h, m)

    def _pooled(self, batch: Any, h: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

        index, size = batch.batch.to(h.device), batch.num_graphs
        if self.pooling == "sum":
            pooled = global_add_pool(h, index, size)
        elif self.pooling == "mean":
            pooled = global_mean_pool(h, index, size)
        else:
            pooled = torch.cat([global_mean_pool(h, index, size), global_max_pool(h, index, size)], dim=-1)
        if self.motifs:
            from scibind_molecules.motifs import motif_batch

            pooled = torch.cat([pooled, global_mean_pool(m, motif_batch(batch).to(h.device), size)], dim=-1)
        return self.head(pooled)

    def motif_tokens(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Motif tokens ``float32[num_graphs, max_motifs, embed_dim]`` and their ``bool`` mask."""
        from torch_geometric.utils import to_dense_batch

        from scibind_molecules.motifs import motif_batch

        m = self.token_head(self.motif_states(batch))
        return to_dense_batch(m, motif_batch(batch).to(m.device), batch_size=batch.num_graphs)

    def _tokens(self, batch: Any, h: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        from torch_geometric.utils import to_dense_batch

        atoms, _ = to_dense_batch(self.token_head(h), batch.batch.to(h.device), batch_size=batch.num_graphs)
        if self.tokens == "atoms":
            return atoms
        from scibind_molecules.motifs import motif_batch

        motifs, _ = to_dense_batch(
            self.token_head(m), motif_batch(batch).to(h.device), batch_size=batch.num_graphs
        )
        return _interleave(atoms, motifs)

    def token_mask(self, batch: Any) -> torch.Tensor:
        """``bool[num_graphs, T]``: which tokens of :meth:`forward_tokens` are atoms (or motifs).

        Built on the device of ``batch.batch``.
        """
        atoms = _count_mask(batch.batch, batch.num_graphs)
        if self.tokens == "atoms":
            return atoms
        from scibind_molecules.motifs import motif_batch

        index = motif_batch(batch).to(batch.batch.device)
        return _interleave(atoms[..., None], _count_mask(index, batch.num_graphs)[..., None])[..., 0]


def _count_mask(index: torch.Tensor, size: int) -> torch.Tensor:
    """``bool[size, max count]``: position ``p`` of row ``g`` is real when ``p <`` the count of ``g``."""
    counts = torch.bincount(index, minlength=size)
    width = int(counts.max()) if len(counts) else 0
    return torch.arange(width, device=index.device)[None, :] < counts[:, None]


def _interleave(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[n, 2·max(Ta, Tb), ...]`` with ``a`` at even and ``b`` at odd positions (each zero-padded)."""
    width = max(a.shape[1], b.shape[1])
    out = a.new_zeros(a.shape[0], width, 2, *a.shape[2:])
    out[:, : a.shape[1], 0] = a
    out[:, : b.shape[1], 1] = b
    return out.flatten(1, 2)


def tiny_graph(conv: str = "gine", embed_dim: int = 32, **kwargs: Any) -> GraphEncoder:
    """A two-layer :class:`GraphEncoder` of width 32, for tests."""
    options = {"hidden_dim": 32, "n_layers": 2, "dropout": 0.0, "heads": 2, **kwargs}
    return GraphEncoder(conv=conv, embed_dim=embed_dim, **options)


def gine(**kwargs: Any) -> GraphEncoder:
    """A :class:`GraphEncoder` with GINE layers (bond features in the messages)."""
    return GraphEncoder(conv="gine", **kwargs)


def gine_motif(**kwargs: Any) -> GraphEncoder:
    """A :class:`GraphEncoder` with GINE layers and the motif level (``motifs=True``)."""
    return GraphEncoder(conv="gine", motifs=True, **kwargs)


def tiny_motif(**kwargs: Any) -> GraphEncoder:
    """:func:`tiny_graph` with the motif level, for tests."""
    return tiny_graph(motifs=True, **kwargs)


def gin(**kwargs: Any) -> GraphEncoder:
    """A :class:`GraphEncoder` with GIN layers (atom features only)."""
    return GraphEncoder(conv="gin", **kwargs)


def graph_transformer(**kwargs: Any) -> GraphEncoder:
    """A :class:`GraphEncoder` with graph transformer layers (bond features in the attention)."""
    return GraphEncoder(conv="transformer", **kwargs)
