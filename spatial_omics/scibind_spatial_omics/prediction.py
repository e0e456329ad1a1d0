"""``spatial_omics/expression-prediction``: gene expression predicted from image embeddings (HEST-bench).

A ridge regression from the embeddings of ``view`` to the expression of the target genes, cross-validated
so every record is predicted by a model that did not see it (folds never split a ``group``). As in
HEST-bench, the features are either the embeddings themselves (``ridge``) or their first ``n_pca`` principal
components (``pca-ridge``, PCA fitted on the training folds). The score is the Pearson correlation between
predicted and measured expression across records, per gene; reported as the mean over all
target genes and over the top ``top_k`` HVGs.

Targets are the eval records' own expression rows, read through the dataset (``EvalContext.view_data`` of
``expression_view``, with the recipe's reader options): the ``genes`` given, else the HVGs recorded in the
matrix file (``build_spot_pairs`` records them), else every gene ranked by its variance over the eval records.
Without a dataset (embeddings given alone) the manifest's ``hvg:<gene>`` columns are the targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scibind.errors import ConfigError, DataError
from scibind.evaluate.context import EvalContext

from scibind_spatial_omics.targets import HVG_PREFIX, expression_rows, has_view_data, prefixed_matrix

__all__ = ["ExpressionPredictionTask", "pearson_per_column"]

TASK = "spatial_omics/expression-prediction"
METHODS = ("ridge", "pca-ridge")


def pearson_per_column(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson r of each column (NaN where either column is constant)."""
    a = y_true - y_true.mean(0)
    b = y_pred - y_pred.mean(0)
    denom = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(0) / np.where(denom > 0, denom, 1.0), np.nan)


class ExpressionPredictionTask:
    """Cross-validated ridge from embeddings to expression; Pearson per gene.

    Keys ``expression_prediction/<view>/<method>/pearson_mean`` (all target genes),
    ``.../pearson_top<k>`` (top ``top_k`` HVGs), ``.../n_genes`` and ``.../n`` for each method.

    Args:
        view: The view whose embeddings are the features (e.g. ``image``).
        methods: Any of ``ridge`` and ``pca-ridge``.
        alpha: Ridge regularisation.
        n_pca: Principal components of ``pca-ridge`` (HEST-bench: 256; capped by the data).
        top_k: The HVG count of the headline score (HEST-bench: 50).
        folds: Cross-validation folds (capped by the number of records / groups).
        seed: Fold shuffling seed.
        prefix: Prefix of the target columns (used only when the context has no dataset).
        expression_view: The view whose raw rows are the targets.
        genes: Target genes, in order (default: the file's recorded HVGs, else all genes by variance).
    """

    def __init__(
        self,
        view: str = "image",
        methods: Sequence[str] = METHODS,
        alpha: float = 1.0,
        n_pca: int = 256,
        top_k: int = 50,
        folds: int = 5,
        seed: int = 0,
        prefix: str = HVG_PREFIX,
        expression_view: str = "gene_expression",
        genes: Sequence[str] | None = None,
    ) -> None:
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ConfigError(f"{TASK}: methods must be a non-empty subset of {METHODS}, got {list(methods)}")
        if alpha <= 0 or n_pca < 1 or top_k < 1 or folds < 2:
            raise ConfigError(f"{TASK}: need alpha > 0, n_pca >= 1, top_k >= 1 and folds >= 2")
        self.view, self.methods, self.alpha = view, tuple(methods), float(alpha)
        self.n_pca, self.top_k, self.folds, self.seed, self.prefix = n_pca, top_k, folds, seed, prefix
        self.expression_view = expression_view
        self.genes = list(genes) if genes is not None else None

    def targets(self, ctx: EvalContext) -> tuple[list[str], np.ndarray]:
        """Target gene names and ``float[N, K]`` values, the headline genes first (see the module docstring).

        Raises:
            ConfigError: ``genes`` given but the reader does not name its genes, or names unknown genes.
        """
        if not has_view_data(ctx, self.expression_view):
            return prefixed_matrix(ctx, self.prefix, TASK)
        rows = expression_rows(ctx, self.expression_view, TASK)
        if self.genes is not None:
            if rows.genes is None:
                raise ConfigError(
                    f"{TASK}: genes= needs a reader that names its genes (spatial_omics/expression)"
                )
            position = {g: i for i, g in enumerate(rows.genes)}
            unknown = [g for g in self.genes if g not in position]
            if unknown:
                raise ConfigError(
                    f"{TASK}: genes {unknown[:5]} are not in the {self.expression_view!r} panel"
                )
            order = [position[g] for g in self.genes]
        elif rows.hvgs:
            position = {g: i for i, g in enumerate(rows.genes or [])}
            order = [position[g] for g in rows.hvgs]
        else:
            with np.errstate(invalid="ignore"):
                variance = np.nan_to_num(np.nanvar(rows.values, axis=0), nan=-1.0)
            order = np.argsort(-variance, kind="stable").tolist()
        names = [rows.genes[j] for j in order] if rows.genes is not None else [str(j) for j in order]
        return names, rows.values[:, order]

    def _model(self, method: str, n_train: int, width: int) -> object:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if method == "ridge":
            return make_pipeline(StandardScaler(), Ridge(alpha=self.alpha))
        n_comp = max(1, min(self.n_pca, n_train - 1, width))
        return make_pipeline(
            PCA(n_components=n_comp, random_state=self.seed), StandardScaler(), Ridge(alpha=self.alpha)
        )

    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        """Score every method on records with ``view`` present and all targets measured."""
        from sklearn.model_selection import GroupKFold, KFold

        mask = ctx.require_view(self.view, TASK).numpy()
        _, y = self.targets(ctx)
        keep = mask & ~np.isnan(y).any(1)
        idx = np.flatnonzero(keep)
        x = ctx.embeddings[self.view][idx].double().numpy()
        y = y[idx]
        groups = None
        if ctx.groups is not None:
            groups = np.array([ctx.groups[i] or f"\0{ctx.ids[i]}" for i in idx])
        n_splits = min(self.folds, len(idx), len(set(groups.tolist())) if groups is not None else len(idx))
        if n_splits < 2:
            raise DataError(f"{TASK}: {len(idx)} usable records allow fewer than 2 folds")
        splitter = (
            GroupKFold(n_splits=n_splits)
            if groups is not None
            else KFold(n_splits, shuffle=True, random_state=self.seed)
        )
        splits = list(splitter.split(x, y, groups))
        out: dict[str, float] = {}
        for method in self.methods:
            pred = np.zeros_like(y)
            for train, test in splits:
                model = self._model(method, len(train), x.shape[1])
                model.fit(x[train], y[train])
                pred[test] = model.predict(x[test])
            r = pearson_per_column(y, pred)
            prefix = f"expression_prediction/{self.view}/{method}"
            out[f"{prefix}/pearson_mean"] = float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")
            top = r[: self.top_k]
            out[f"{prefix}/pearson_top{self.top_k}"] = (
                float(np.nanmean(top)) if np.isfinite(top).any() else float("nan")
            )
            out[f"{prefix}/n_genes"] = float(y.shape[1])
            out[f"{prefix}/n"] = float(len(idx))
        return out
