"""Tiny stand-ins following the PairedDataset / MultiTowerModel interfaces of docs/internals.md."""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from scibind.data.types import Batch, ModalityBatch
from torch import nn


class Manifest:
    def __init__(self, frame: pd.DataFrame, label_columns: list[str]) -> None:
        self.frame = frame
        self.label_columns = label_columns


class PairedDataset:
    """Rows of a frame with vector views ``a`` and ``b`` (``None`` = absent)."""

    def __init__(self, frame: pd.DataFrame, views: list[str], labels: list[str]) -> None:
        self.manifest = Manifest(frame, labels)
        self.views = views
        self.labels = labels

    def __len__(self) -> int:
        return len(self.manifest.frame)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.manifest.frame.iloc[i]
        views = {v: None if row[v] is None else torch.tensor(row[v], dtype=torch.float32) for v in self.views}
        return {"id": row["id"], "views": views, "targets": {}}

    def collate(self, items: list[dict[str, Any]]) -> Batch:
        views, present = {}, {}
        for v in self.views:
            mask = torch.tensor([it["views"][v] is not None for it in items])
            index = mask.nonzero().flatten()
            data = (
                torch.stack([items[i]["views"][v] for i in index.tolist()])
                if len(index)
                else torch.zeros(0, 3)
            )
            views[v] = ModalityBatch(data=data, index=index)
            present[v] = mask
        return Batch(ids=[it["id"] for it in items], views=views, present=present)

    def label_values(self, name: str) -> list[str | None]:
        return [None if pd.isna(x) else str(x) for x in self.manifest.frame[name]]


class MultiTowerModel(nn.Module):
    def __init__(self, views: list[str], in_dim: int = 3, embed_dim: int = 4) -> None:
        super().__init__()
        self.towers = nn.ModuleDict()
        for v in views:  # identical towers, so paired views land close together
            torch.manual_seed(0)
            self.towers[v] = nn.Linear(in_dim, embed_dim)
        self.embed_dim = embed_dim
        self.calls = 0

    def encode(self, view: str, data: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.towers[view](data), dim=-1)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.calls += 1
        assert not self.training and not torch.is_grad_enabled()
        out = {}
        for v, mb in batch.views.items():
            emb = torch.zeros(len(batch), self.embed_dim)
            if len(mb.index):
                emb[mb.index] = self.encode(v, mb.data)
            out[v] = emb
        return out


def make_dataset(n: int = 12) -> PairedDataset:
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(n, 3, generator=g)
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": f"r{i}",
                "a": latent[i].tolist(),
                "b": None if i == 5 else (latent[i] + 0.01 * torch.randn(3, generator=g)).tolist(),
                "kind": None if i == 0 else ("x" if i % 2 else "y"),
                "group": f"g{i // 2}",
            }
        )
    return PairedDataset(pd.DataFrame(rows), ["a", "b"], ["kind"])
