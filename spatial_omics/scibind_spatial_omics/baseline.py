"""``spatial_omics/expression-knn``: the kNN-on-expression baseline of cell typing.

Zero-shot cell typing from text prompts is only interesting next to what the expression alone gives. This
head runs the core kNN probe (``core/knn``: cosine ``k``-NN, cross-validated with the same folds) on the
expression PCA written into the manifest as ``pca:<i>`` columns, instead of on a tower's embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scibind.evaluate.context import EvalContext
from scibind.evaluate.probes import KNNTask

from scibind_spatial_omics.targets import PCA_PREFIX, prefixed_matrix

__all__ = ["ExpressionKNNTask"]

TASK = "spatial_omics/expression-knn"
FEATURE_VIEW = "expression_pca"


class ExpressionKNNTask:
    """Cross-validated kNN accuracy of ``label`` from the expression PCA columns.

    Keys: ``knn/expression_pca/<label>/accuracy``, ``.../balanced_accuracy``, ``.../macro_f1``, ``.../n``,
    ``.../n_classes`` (the core kNN keys, with the view ``expression_pca``).

    Args:
        label: The label column (e.g. ``cell_type``).
        k: Neighbours that vote.
        folds: Cross-validation folds.
        seed: Fold shuffling seed.
        prefix: Prefix of the feature columns.
    """

    def __init__(
        self, label: str, k: int = 20, folds: int = 5, seed: int = 0, prefix: str = PCA_PREFIX
    ) -> None:
        self.knn = KNNTask(label, FEATURE_VIEW, k=k, folds=folds, seed=seed)
        self.prefix = prefix

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Run the core kNN probe on the expression features of the eval records."""
        _, features = prefixed_matrix(ctx, self.prefix, TASK)
        values = torch.from_numpy(features).float()
        present = ~values.isnan().any(1)
        x = F.normalize(torch.nan_to_num(values), dim=-1)
        features_ctx = EvalContext(
            ids=ctx.ids,
            embeddings={FEATURE_VIEW: x},
            present={FEATURE_VIEW: present},
            labels=ctx.labels,
            groups=ctx.groups,
        )
        return self.knn(features_ctx)
