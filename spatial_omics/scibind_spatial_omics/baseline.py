"""``spatial_omics/expression-knn``: the kNN-on-expression baseline of cell typing.

Zero-shot cell typing from text prompts is only interesting next to what the expression alone gives. This
head runs the core kNN probe (``core/knn``: cosine ``k``-NN, cross-validated with the same folds) on the
first ``n_pca`` principal components of the eval records' expression rows (read through the dataset,
``EvalContext.view_data`` of ``view``, with the recipe's reader options), instead of on a tower's embeddings.
The PCA is unsupervised and fitted on all eval records (no labels are used). Without a dataset (embeddings
given alone) the manifest's ``pca:<i>`` columns are the features.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scibind.evaluate.context import EvalContext
from scibind.evaluate.probes import KNNTask

from scibind_spatial_omics.targets import PCA_PREFIX, expression_rows, has_view_data, prefixed_matrix

__all__ = ["ExpressionKNNTask"]

TASK = "spatial_omics/expression-knn"
FEATURE_VIEW = "expression_pca"


class ExpressionKNNTask:
    """Cross-validated kNN accuracy of ``label`` from the PCA of the eval expression rows.

    Keys: ``knn/expression_pca/<label>/accuracy``, ``.../balanced_accuracy``, ``.../macro_f1``, ``.../n``,
    ``.../n_classes`` (the core kNN keys, with the view ``expression_pca``).

    Args:
        label: The label column (e.g. ``cell_type``).
        k: Neighbours that vote.
        folds: Cross-validation folds.
        seed: Fold shuffling seed.
        prefix: Prefix of the feature columns (used only when the context has no dataset).
        view: The expression view read from the dataset.
        n_pca: Principal components of the expression (capped by the data).
    """

    def __init__(
        self,
        label: str,
        k: int = 20,
        folds: int = 5,
        seed: int = 0,
        prefix: str = PCA_PREFIX,
        view: str = "gene_expression",
        n_pca: int = 50,
    ) -> None:
        self.knn = KNNTask(label, FEATURE_VIEW, k=k, folds=folds, seed=seed)
        self.prefix, self.view, self.n_pca, self.seed = prefix, view, int(n_pca), seed

    def features(self, ctx: EvalContext) -> np.ndarray:
        """``float[N, n_pca]`` expression PCA of the eval records (NaN rows where the view is absent)."""
        if not has_view_data(ctx, self.view):
            return prefixed_matrix(ctx, self.prefix, TASK)[1]
        from sklearn.decomposition import PCA

        values = expression_rows(ctx, self.view, TASK).values
        present = ~np.isnan(values).all(1)
        rows = np.nan_to_num(values[present])  # unmeasured genes of union panels count as 0
        n_comp = max(1, min(self.n_pca, rows.shape[0] - 1, rows.shape[1]))
        pcs = PCA(n_components=n_comp, random_state=self.seed).fit_transform(rows)
        out = np.full((len(values), n_comp), np.nan)
        out[present] = pcs
        return out

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Run the core kNN probe on the expression features of the eval records."""
        values = torch.from_numpy(self.features(ctx)).float()
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
