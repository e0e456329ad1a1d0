"""Training strategies: locked towers (LiT), progressive alignment (OneEncoder), compatible projection (XBT).

Three recipe options change *what* is trained, not the loop, so they live here behind one facade,
:class:`Strategies`, that the trainer calls at four points (after building the model, after restoring a
checkpoint, after the objective of each step, at evaluation):

- **Locked towers** (``towers.<view>.freeze``; Zhai et al., LiT, 2022): the whole tower (encoder and
  projection) gets no gradients and stays in eval mode, so its weights are bit-identical after training.
  With ``train.cache_frozen`` the output of every frozen encoder (``freeze`` or ``freeze_encoder``) is
  cached per record id, so later epochs skip that encoder's forward. The cache is keyed by a sha256 of the
  encoder's name, options and weights: a cache written for other weights is never read.
  :class:`FrozenFeatureCache` does this.
- **Progressive alignment** (``train.init_from``; OneEncoder, Faye et al., 2024): towers of this recipe whose
  view also has a tower in an earlier run are initialised from that run's newest complete checkpoint (read
  with safetensors, verified against its ``COMPLETE`` record). Freeze them and add a tower: only the new
  modality is trained into the existing space. :func:`init_from_checkpoint` does this.
- **Backward-compatible training** (``train.compatible``; Shen et al., BCT, 2020; XBT, 2022): an extra loss
  pulls the new tower's embedding of each record towards that record's embedding under the *old* model
  (from an embedding store written by ``scibind embed`` / evaluation, or recomputed from an old run), so
  galleries embedded by the old model need no recomputation. Evaluation reports new-query/old-gallery
  retrieval as ``xbt/<query view>-><gallery view>/R@k``. :class:`CompatibilityLoss` does this.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from scibind.align.distributed import gather_no_grad, gather_sizes, gather_with_grad
from scibind.align.output import LossOutput
from scibind.atomic import atomic_write_bytes
from scibind.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from scibind.align.model import MultiTowerModel, Tower
    from scibind.data.types import Batch
    from scibind.train.recipe import Recipe

__all__ = [
    "CompatibilityLoss",
    "FrozenFeatureCache",
    "Strategies",
    "encoder_fingerprint",
    "init_from_checkpoint",
    "lock_tower",
]

logger = logging.getLogger("scibind.train")

CACHE_DIR = "cache"
XBT_KS = (1, 5)


# -- locked towers -----------------------------------------------------------------------------------------


def lock_tower(tower: Tower) -> None:
    """Freeze a whole tower: no gradients for encoder and projection, encoder kept in eval mode."""
    tower.requires_grad_(False)
    tower.freeze_encoder = True  # Tower.train() then keeps the encoder in eval mode (dropout off)
    tower.encoder.eval()


def encoder_fingerprint(encoder: torch.nn.Module, config: Mapping[str, Any]) -> str:
    """sha256 of an encoder's recipe entry (name, options) and of every tensor of its state dict."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode("utf-8"))
    for name, tensor in encoder.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class FrozenFeatureCache:
    """Caches frozen encoders' outputs per record id, so each record is encoded once per run.

    :meth:`install` wraps the encoders' ``forward`` (the instance attribute, so the state dict and
    checkpoints are unchanged) and registers hooks on the model that remember the batch being embedded.
    A cached encoder called on that batch's view data encodes only the records it has not seen and returns
    the cached rows for the rest; called with anything else (prompts, another batch) it runs as usual.

    Args:
        fingerprints: View -> :func:`encoder_fingerprint` of its (frozen) encoder.
        folder: Where caches persist (``<view>-<fingerprint[:16]>.safetensors``); ``None``: memory only.
        device: Where cached rows loaded from disk are kept (the encoders' device).
        writable: Whether :meth:`save` writes ``folder`` (under torchrun only rank 0 writes; every rank
            reads what it saved before).
    """

    def __init__(
        self,
        fingerprints: Mapping[str, str],
        folder: Path | None = None,
        device: torch.device | str = "cpu",
        writable: bool = True,
    ) -> None:
        self.fingerprints = dict(fingerprints)
        self.folder = folder
        self.writable = writable
        self.device = torch.device(device)
        self.rows: dict[str, dict[str, torch.Tensor]] = {view: {} for view in self.fingerprints}
        self.encoded: dict[str, int] = dict.fromkeys(self.fingerprints, 0)
        self._batch: Batch | None = None
        self._handles: list[Any] = []
        self._encoders: list[torch.nn.Module] = []
        self._saved: dict[str, int] = dict.fromkeys(self.fingerprints, 0)
        if folder is not None:
            for view in self.fingerprints:
                self._load(view)

    def path(self, view: str) -> Path:
        """The cache file of ``view`` (name includes the encoder's fingerprint)."""
        assert self.folder is not None
        return self.folder / f"{view}-{self.fingerprints[view][:16]}.safetensors"

    def install(self, model: MultiTowerModel) -> None:
        """Wrap the cached views' encoders and hook ``model`` so the cache sees each batch's ids."""

        def remember(_module: Any, args: tuple[Any, ...]) -> None:
            self._batch = args[0] if args else None

        def forget(_module: Any, _args: Any, _out: Any) -> None:
            self._batch = None

        self._handles = [model.register_forward_pre_hook(remember), model.register_forward_hook(forget)]
        for view in self.fingerprints:
            encoder = model.towers[view].encoder
            encoder.forward = self._cached_forward(view, encoder.forward)  # type: ignore[method-assign]
            self._encoders.append(encoder)

    def remove(self) -> None:
        """Undo :meth:`install` (the encoders run uncached again)."""
        for handle in self._handles:
            handle.remove()
        for encoder in self._encoders:
            del encoder.forward  # the class's forward is visible again
        self._handles, self._encoders, self._batch = [], [], None

    def _cached_forward(self, view: str, original: Any) -> Any:
        rows = self.rows[view]

        def forward(data: Any) -> torch.Tensor:
            batch = self._batch
            mb = batch.views.get(view) if batch is not None else None
            if mb is None or mb.data is not data:
                return original(data)
            ids = [str(batch.ids[i]) for i in mb.index.tolist()]
            missing = [k for k, rid in enumerate(ids) if rid not in rows]
            if missing:
                subset = _select(data, missing) if len(missing) < len(ids) else data
                if subset is None:  # an opaque collate output: encode the whole batch
                    subset, missing = data, list(range(len(ids)))
                with torch.no_grad():
                    features = original(subset).detach()
                self.encoded[view] += len(missing)
                for row, k in enumerate(missing):
                    rows[ids[k]] = features[row]
            return torch.stack([rows[rid] for rid in ids])

        return forward

    def save(self) -> None:
        """Write each view's cache (when it grew) atomically to its fingerprinted file."""
        if self.folder is None or not self.writable:
            return
        from safetensors.torch import save

        for view, rows in self.rows.items():
            if not rows or len(rows) == self._saved[view]:
                continue
            ids = list(rows)
            tensors = {"features": torch.stack([rows[i] for i in ids]).cpu().contiguous()}
            meta = {"fingerprint": self.fingerprints[view], "ids": json.dumps(ids)}
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path(view), save(tensors, metadata=meta))
            self._saved[view] = len(ids)

    def _load(self, view: str) -> None:
        from safetensors import SafetensorError, safe_open

        path = self.path(view)
        if not path.is_file():
            return
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                if meta.get("fingerprint") != self.fingerprints[view]:
                    return  # another encoder's cache with a colliding prefix: never use it
                features = fh.get_tensor("features").to(self.device)
                ids = json.loads(meta["ids"])
        except (SafetensorError, OSError, KeyError, ValueError) as exc:
            logger.warning("ignoring unreadable feature cache %s (%s)", path, exc)
            return
        if len(ids) != len(features):
            return
        self.rows[view].update(zip(ids, features, strict=True))
        self._saved[view] = len(ids)
        logger.info("feature cache of %r: %d records from %s", view, len(ids), path)


def _select(data: Any, positions: Sequence[int]) -> Any:
    """Rows ``positions`` of a collate output (tensor or list); ``None`` for other types."""
    if isinstance(data, torch.Tensor):
        return data[torch.as_tensor(positions, device=data.device)]
    if isinstance(data, list):
        return [data[k] for k in positions]
    return None


# -- progressive alignment ---------------------------------------------------------------------------------


def resolve_checkpoint(source: str | Path) -> Path:
    """A run folder's newest complete checkpoint, or ``source`` itself when it is a checkpoint folder.

    Raises:
        CheckpointError: No complete checkpoint there.
    """
    from scibind.train.checkpoint import COMPLETE, latest_checkpoint

    path = Path(source).expanduser().resolve()
    if (path / COMPLETE).is_file():
        return path
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise CheckpointError(
            f"train.init_from: {path} is neither a checkpoint folder nor a run folder with a complete "
            "checkpoint; train that run first"
        )
    return ckpt


def init_from_checkpoint(
    model: MultiTowerModel, source: str | Path, views: Sequence[str] | None = None
) -> list[str]:
    """Load every tower of ``model`` (or of ``views``) whose view has a tower in the checkpoint at ``source``.

    Only safetensors are read (nothing is unpickled); the checkpoint is verified first.

    Args:
        model: The freshly built model.
        source: A run folder (its newest complete checkpoint) or a ``step-N`` checkpoint folder.
        views: Load only these views (each must be in the checkpoint); ``None``: every shared view.

    Returns:
        The views that were loaded.

    Raises:
        CheckpointError: No checkpoint, a corrupt one, no shared view, or a shared view whose weights do not
            fit (another encoder, width or ``embed_dim``).
    """
    from safetensors.torch import load_file

    from scibind.train.checkpoint import verify_checkpoint

    ckpt = resolve_checkpoint(source)
    verify_checkpoint(ckpt)
    weights = load_file(str(ckpt / "model.safetensors"), device="cpu")
    loaded = []
    saved = sorted({k.split(".")[2] for k in weights if k.startswith("model.towers.")})
    for view, tower in model.towers.items():
        prefix = f"model.towers.{view}."
        sub = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        if views is not None and view not in views:
            continue
        if not sub:
            if views is not None:
                raise CheckpointError(f"train.init_views: {ckpt} has no tower {view!r}; it has {saved}")
            continue
        try:
            tower.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"train.init_from: tower {view!r} of {ckpt} does not fit this recipe's tower {view!r} (same "
                f"encoder, options and embed_dim are needed): {exc}"
            ) from exc
        loaded.append(view)
    if not loaded:
        raise CheckpointError(
            f"train.init_from: {ckpt} has towers {saved}, none of which is a view of this recipe "
            f"({list(model.towers)})"
        )
    return loaded


# -- backward-compatible training --------------------------------------------------------------------------


class ReferenceEmbeddings:
    """Old-model embeddings by view and record id (L2-normalised rows), on one device."""

    def __init__(self, views: Mapping[str, tuple[list[str], torch.Tensor]], device: torch.device) -> None:
        self.vectors = {v: F.normalize(x.float(), dim=-1).to(device) for v, (_, x) in views.items()}
        self.row = {v: {rid: i for i, rid in enumerate(ids)} for v, (ids, _) in views.items()}

    @property
    def views(self) -> list[str]:
        return list(self.vectors)

    def lookup(self, view: str, ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(found: bool[n], rows: [found.sum(), D])`` for ``ids`` of ``view``."""
        table = self.row[view]
        index = [table.get(str(i), -1) for i in ids]
        found = torch.tensor([i >= 0 for i in index], dtype=torch.bool)
        rows = self.vectors[view][[i for i in index if i >= 0]]
        return found, rows


def load_reference(
    source: str | Path, recipe: Recipe, which: str, device: torch.device, *, run_dir: Path | None = None
) -> ReferenceEmbeddings:
    """Old embeddings of the ``which`` split of ``recipe``'s data, from a store or recomputed from a run.

    Args:
        source: An embedding store (``scibind embed``'s Parquet/Zarr, or a run's
            ``eval/embeddings.parquet``) or an old run folder, whose newest checkpoint then embeds the
            records of this recipe's manifest.
        recipe: The new recipe (its manifests name the records).
        which: ``"train"`` or ``"eval"``.
        device: Where the vectors are kept.
        run_dir: This run's folder (holds a generated dataset).
    """
    from scibind.train.run import CONFIG_FILE, build_dataset, load_run

    path = Path(source).expanduser().resolve()
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        from scibind.evaluate.runner import embed_dataset

        old = load_run(path)
        manifest = recipe.data.train if which == "train" else (recipe.data.eval or recipe.data.train)
        dataset = build_dataset(old.recipe, which, manifest=manifest, run_dir=run_dir)  # type: ignore[arg-type]
        embedded = embed_dataset(old.model, dataset, device=device)
        views = {}
        for view, vectors in embedded.embeddings.items():
            keep = embedded.present[view]
            ids = [i for i, k in zip(embedded.ids, keep.tolist(), strict=True) if k]
            views[view] = (ids, vectors[keep])
        return ReferenceEmbeddings(views, device)
    from scibind.store.store import EmbeddingStore

    store = EmbeddingStore.read(path)
    views = {v: (list(store[v].ids), torch.from_numpy(store[v].vectors)) for v in store.views}
    return ReferenceEmbeddings(views, device)


class CompatibilityLoss:
    """InfoNCE of new embeddings against the old model's embeddings of the same records (BCT/XBT).

    For each ``new view -> old view`` pair, the new embedding of record ``i`` must pick out the old
    embedding of record ``i`` among the old embeddings of the batch (old side fixed, temperature fixed).
    Records without an old embedding are skipped.
    """

    def __init__(
        self, reference: ReferenceEmbeddings, views: Mapping[str, str], weight: float, temperature: float
    ) -> None:
        missing = sorted(set(views.values()) - set(reference.views))
        if missing:
            raise ConfigError(
                f"train.compatible.views names old views {missing}; the reference has {reference.views}"
            )
        self.reference = reference
        self.views = dict(views)
        self.weight = weight
        self.temperature = temperature

    def __call__(self, out: LossOutput, embeddings: Mapping[str, torch.Tensor], batch: Batch) -> LossOutput:
        """``out`` with ``weight`` times the compatibility loss added (and logged as ``xbt/<view>``)."""
        parts = dict(out.parts)
        loss = out.loss
        for new, old in self.views.items():
            found, targets = self.reference.lookup(old, batch.ids)
            keep = found.to(embeddings[new].device)
            if new in batch.present:
                keep = keep & batch.present[new].bool()
            order = keep[found.to(keep.device)]  # rows of `targets` whose record is present in the new view
            z, old_z = embeddings[new][keep].float(), targets[order]
            # Under torchrun the term, like the objectives, is one InfoNCE over the global batch.
            sizes = gather_sizes(len(z), z.device)
            z, old_z = gather_with_grad(z, sizes), gather_no_grad(old_z, sizes)
            if len(z) < 2:
                continue
            logits = z @ old_z.T / self.temperature
            term = F.cross_entropy(logits, torch.arange(len(z), device=z.device))
            parts[f"xbt/{new}"] = term.detach()
            loss = loss + self.weight * term
        return LossOutput(loss, parts)


def compatibility_metrics(
    model: MultiTowerModel,
    dataset: Any,
    reference: ReferenceEmbeddings,
    query_views: Sequence[str],
    *,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Retrieval of old-gallery records by new-model queries: ``xbt/<query>-><gallery>/R@k``.

    The gallery of each old view is its reference embeddings of the evaluation records; a query is
    correct at ``k`` when its own record is among its ``k`` nearest gallery rows. Where the query view
    also exists in the reference (and is not the gallery), ``xbt/old:<query>-><gallery>/R@k`` gives the
    old model's own numbers for comparison.
    """
    from scibind.evaluate.runner import embed_dataset

    embedded = embed_dataset(model, dataset, batch_size=batch_size, device=device, views=list(query_views))
    wanted = set(str(i) for i in embedded.ids)
    metrics: dict[str, float] = {}
    for gallery in reference.views:
        gids = [i for i in reference.row[gallery] if i in wanted]
        if not gids:
            continue
        _, gvec = reference.lookup(gallery, gids)
        position = {rid: k for k, rid in enumerate(gids)}
        queries: dict[str, tuple[list[str], torch.Tensor]] = {}
        for view in query_views:
            keep = embedded.present[view].tolist()
            index = [j for j, rid in enumerate(embedded.ids) if keep[j] and str(rid) in position]
            ids = [str(embedded.ids[j]) for j in index]
            queries[view] = (ids, embedded.embeddings[view][index].to(gvec.device))
            if view in reference.views and view != gallery:
                found, old_q = reference.lookup(view, ids)
                if bool(found.all()):
                    queries[f"old:{view}"] = (ids, old_q)
        for name, (ids, q) in queries.items():
            if not ids:
                continue
            sims = q.float() @ gvec.T
            target = torch.tensor([position[str(r)] for r in ids], device=sims.device)
            rank = (sims > sims.gather(1, target[:, None])).sum(dim=1)
            for k in XBT_KS:
                metrics[f"xbt/{name}->{gallery}/R@{k}"] = float((rank < k).float().mean())
    return metrics


# -- the facade the trainer calls --------------------------------------------------------------------------


class Strategies:
    """The recipe's strategies, applied at the trainer's hook points.

    Args:
        recipe: The recipe (``towers.<view>.freeze``, ``train.init_from``, ``train.cache_frozen``,
            ``train.compatible``).
        run_dir: The run folder (feature caches go to ``<run_dir>/cache/``).
        device: The training device.
    """

    def __init__(self, recipe: Recipe, run_dir: Path, device: torch.device) -> None:
        self.recipe = recipe
        self.run_dir = run_dir
        self.device = device
        self.cache: FrozenFeatureCache | None = None
        self.compat: CompatibilityLoss | None = None
        self._eval_reference: ReferenceEmbeddings | None = None

    def prepare_model(self, model: MultiTowerModel) -> None:
        """Before the optimizer is built: load ``init_from`` towers, then lock ``freeze`` towers."""
        cfg = self.recipe.train
        if cfg.init_from is not None:
            loaded = init_from_checkpoint(model, cfg.init_from, cfg.init_views)
            logger.info("towers %s initialised from %s", loaded, cfg.init_from)
        for view, tower in self.recipe.towers.items():
            if tower.freeze:
                lock_tower(model.towers[view])

    def start(self, model: MultiTowerModel, *, is_main: bool) -> None:
        """After weights are final (init or resume): install the feature cache, load compatibility targets."""
        cfg = self.recipe.train
        if cfg.cache_frozen:
            frozen = [v for v, t in self.recipe.towers.items() if t.freeze or t.freeze_encoder]
            prints = {
                v: encoder_fingerprint(
                    model.towers[v].encoder,
                    {
                        "encoder": self.recipe.towers[v].encoder,
                        "kwargs": self.recipe.towers[v].encoder_kwargs,
                    },
                )
                for v in frozen
            }
            self.cache = FrozenFeatureCache(prints, self.run_dir / CACHE_DIR, self.device, writable=is_main)
            self.cache.install(model)
        if cfg.compatible is not None:
            c = cfg.compatible
            unknown = sorted(set(c.views) - set(self.recipe.towers))
            if unknown:
                raise ConfigError(f"train.compatible.views: {unknown} have no tower in this recipe")
            reference = load_reference(c.reference, self.recipe, "train", self.device, run_dir=self.run_dir)
            self.compat = CompatibilityLoss(reference, c.views, c.weight, c.temperature)

    def adjust_loss(
        self, out: LossOutput, embeddings: Mapping[str, torch.Tensor], batch: Batch
    ) -> LossOutput:
        """The step's loss with the compatibility term added (unchanged without ``train.compatible``)."""
        return out if self.compat is None else self.compat(out, embeddings, batch)

    def save(self) -> None:
        """At a checkpoint (main process): persist grown feature caches."""
        if self.cache is not None:
            self.cache.save()

    def stop(self) -> None:
        """After training: persist and uninstall the feature cache."""
        if self.cache is not None:
            self.cache.save()
            self.cache.remove()

    def evaluate(self, model: MultiTowerModel, dataset: Any) -> dict[str, float]:
        """``xbt/...`` retrieval metrics on the evaluation split (empty without ``train.compatible``)."""
        c = self.recipe.train.compatible
        if c is None:
            return {}
        reference = load_reference(c.reference, self.recipe, "eval", self.device, run_dir=self.run_dir)
        return compatibility_metrics(
            model,
            dataset,
            reference,
            list(c.views),
            batch_size=self.recipe.eval.batch_size,
            device=self.device,
        )
