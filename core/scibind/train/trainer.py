"""The training loop: recipe -> run folder with config, metrics, checkpoints, evaluation and report.

One function, :func:`train`, serves a single process and every rank under ``torchrun``. Rank 0 writes
files; every rank trains on its slice of each global batch (see :mod:`scibind.train.distributed`). A run
resumed with ``resume=True`` continues from the newest complete checkpoint with the model, optimizer,
learning-rate step, data order and RNG states restored, so on CPU it ends bit-identical to a run that was
never interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scibind.align.tokens import embed_with_tokens, objective_token_views
from scibind.atomic import atomic_write_text
from scibind.errors import CheckpointError, ConfigError
from scibind.train.checkpoint import (
    TrainingState,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    load_model_state,
    load_training_state,
    model_info,
    restore_rng_state,
    save_checkpoint,
)
from scibind.train.distributed import (
    DistContext,
    all_reduce_gradients,
    barrier,
    broadcast_parameters,
    cleanup,
    gather_bytes,
    init_distributed,
)
from scibind.train.grad_cache import ChunkedCollate, grad_cache_backward
from scibind.train.recipe import Recipe, dump_recipe, load_recipe
from scibind.train.run import CONFIG_FILE, build_dataset, build_objective, materialize_data, tower_configs
from scibind.train.schedule import lr_at
from scibind.train.strategies import Strategies

__all__ = ["StepInfo", "TrainResult", "seed_everything", "train"]

logger = logging.getLogger("scibind.train")

METRICS_FILE = "metrics.jsonl"
# Changing any of these makes a checkpoint unusable for the recipe, so resuming with them changed is refused.
FIXED_ON_RESUME = ("embed_dim", "towers", "objective")


@dataclass
class StepInfo:
    """Progress of one optimizer step, passed to the ``on_step`` callback (rank 0 only).

    Attributes:
        step: Optimizer steps completed.
        max_steps: Steps of the whole run.
        loss: The step's loss (mean over accumulated micro-batches).
        lr: Learning rate used.
        parts: The objective's logged parts (per-pair losses, temperature).
        seconds: Seconds since this process started training.
    """

    step: int
    max_steps: int
    loss: float
    lr: float
    parts: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        run_dir: The run folder.
        step: Steps completed.
        checkpoint: The final checkpoint folder.
        metrics: Evaluation metrics (empty on ranks other than 0, or without eval tasks).
        report_path: The report path (``None`` on ranks other than 0).
        final_loss: Loss of the last step trained in this process (``None`` when it trained none).
        resumed_from: Step the run resumed from (``None`` when it started fresh).
    """

    run_dir: Path
    step: int
    checkpoint: Path
    metrics: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None
    final_loss: float | None = None
    resumed_from: int | None = None


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs (CUDA included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    recipe: Recipe,
    run_dir: str | Path,
    *,
    resume: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train ``recipe`` into ``run_dir``.

    Under ``torchrun`` every rank calls this with the same arguments; the process group is joined here and
    left at the end.

    Args:
        recipe: The validated recipe (:func:`scibind.train.load_recipe`).
        run_dir: Output folder: ``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``eval/``,
            ``report.html``.
        resume: Continue from the newest complete checkpoint in ``run_dir`` (a fresh start when there is
            none yet). Without it, a ``run_dir`` that already has checkpoints is refused.
        on_step: Called on rank 0 after every optimizer step (progress display).

    Returns:
        The :class:`TrainResult`.

    Raises:
        ConfigError: The run folder already holds a run (without ``resume``), or the recipe differs from
            the one being resumed in towers, objective or ``embed_dim``.
        CheckpointError: The checkpoint to resume from is corrupt or does not fit.
    """
    ctx = init_distributed(recipe.train.device)
    try:
        return _Trainer(recipe, Path(run_dir), ctx, resume=resume, on_step=on_step).run()
    finally:
        cleanup(ctx)


class _Trainer:
    def __init__(
        self,
        recipe: Recipe,
        run_dir: Path,
        ctx: DistContext,
        *,
        resume: bool,
        on_step: Callable[[StepInfo], None] | None,
    ) -> None:
        self.ctx = ctx
        self.run_dir = run_dir
        self.resume = resume
        self.on_step = on_step
        self.cfg = recipe.train
        self.global_batch = recipe.train.batch_size * ctx.world_size
        self.recipe = self._prepare_run_dir(recipe)

    # -- set-up ---------------------------------------------------------------------------------------------

    def _prepare_run_dir(self, recipe: Recipe) -> Recipe:
        ctx, run_dir = self.ctx, self.run_dir
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not self.resume and latest_checkpoint(run_dir) is not None:
                raise ConfigError(
                    f"{run_dir} already holds a run with checkpoints; pass --resume to continue it or choose "
                    "another --run-dir"
                )
            if self.resume:
                _check_same_model(recipe, run_dir / CONFIG_FILE)
            recipe = materialize_data(recipe, run_dir, generate=True)
        barrier(ctx)
        if not ctx.is_main:
            recipe = materialize_data(recipe, run_dir, generate=False)
        return recipe

    def _build(self) -> None:
        from scibind.align.model import build_model

        recipe, ctx = self.recipe, self.ctx
        seed_everything(self.cfg.seed)
        self.dataset = build_dataset(recipe, "train")
        self.model = build_model(tower_configs(recipe), recipe.embed_dim).to(ctx.device)
        # Locked towers, init_from, feature cache, compatibility loss (scibind.train.strategies).
        self.strategies = Strategies(recipe, self.run_dir, ctx.device)
        self.strategies.prepare_model(self.model)
        self.objective = build_objective(recipe).to(ctx.device)
        # Views whose token embeddings the objective asks for (needs_tokens); [] for every pooled objective.
        self.token_views = objective_token_views(self.objective, self.model)
        modules = (self.model, self.objective)
        broadcast_parameters([t for m in modules for t in (*m.parameters(), *m.buffers())], ctx)
        self.params = [p for p in (*self.model.parameters(), *self.objective.parameters()) if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            parameter_groups(self.model, self.objective, recipe, self.cfg.weight_decay),
            lr=self.cfg.lr,
            betas=tuple(self.cfg.betas),
            eps=self.cfg.eps,
        )
        use_scaler = self.cfg.precision == "fp16" and ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def _restore(self) -> tuple[int, TrainingState | None]:
        if not self.resume:
            return 0, None
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            if self.ctx.is_main:
                logger.info("no complete checkpoint in %s yet; starting from step 0", self.run_dir)
            return 0, None
        load_model_state(ckpt, self.model, self.objective)
        state = load_training_state(ckpt, self.optimizer)
        if state.global_batch_size != self.global_batch:
            raise CheckpointError(
                f"{ckpt} was trained with a global batch of {state.global_batch_size} records "
                f"({state.world_size} processes); this run has {self.global_batch} "
                f"(train.batch_size={self.cfg.batch_size} x {self.ctx.world_size} processes). Resume with "
                "the same batch size and number of processes"
            )
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        if self.ctx.is_main:
            logger.info("resuming from %s (step %d)", ckpt, state.step)
        return state.step, state

    def _loader(self, start_step: int) -> Iterator[Any]:
        from torch.utils.data import DataLoader

        from scibind.data.sampler import GlobalBatchSampler

        sampler = GlobalBatchSampler(
            len(self.dataset),
            self.global_batch,
            seed=self.cfg.seed,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            start_step=start_step * self.cfg.accumulate,
        )
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=(
                ChunkedCollate(self.dataset.collate, self.cfg.grad_cache_chunk)
                if self.cfg.grad_cache
                else self.dataset.collate
            ),
            num_workers=self.recipe.data.num_workers,
            pin_memory=self.ctx.device.type == "cuda",
        )
        return iter(loader)

    # -- the loop -------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        ctx, cfg = self.ctx, self.cfg
        self._build()
        start_step, state = self._restore()
        self.strategies.start(self.model, is_main=ctx.is_main)
        if ctx.is_main:
            atomic_write_text(self.run_dir / CONFIG_FILE, dump_recipe(self.recipe, relative_to=self.run_dir))
        # The loader's iterator draws its base seed from torch's RNG: create it before restoring the RNG so a
        # resumed run and an uninterrupted one consume the RNG identically from here on.
        batches = self._loader(start_step)
        if state is not None and ctx.rank < len(state.rng):
            restore_rng_state(state.rng[ctx.rank])
        else:
            seed_everything(cfg.seed + ctx.rank + start_step)
        metrics_path = self.run_dir / METRICS_FILE
        if ctx.is_main:
            _truncate_metrics(metrics_path, start_step)

        started = time.perf_counter()
        last_loss: float | None = None
        self.model.train()
        self.objective.train()
        for step in range(start_step, cfg.max_steps):
            lr = lr_at(
                step,
                base_lr=cfg.lr,
                max_steps=cfg.max_steps,
                warmup_steps=cfg.warmup_steps,
                schedule=cfg.schedule,
                min_lr_ratio=cfg.min_lr_ratio,
            )
            loss, parts = self._step(batches, lr)
            done = step + 1
            last_loss = loss
            info = StepInfo(done, cfg.max_steps, loss, lr, parts, time.perf_counter() - started)
            if ctx.is_main:
                if done % cfg.log_every == 0 or done == cfg.max_steps:
                    _append_metrics(metrics_path, info)
                if self.on_step is not None:
                    self.on_step(info)
            if done % cfg.checkpoint_every == 0 or done == cfg.max_steps:
                self._save(done)
        del batches  # stops DataLoader workers before evaluation
        self.strategies.stop()
        # A run resumed from its final checkpoint trains no step; that checkpoint is the result.
        final_step = max(start_step, cfg.max_steps)
        result = TrainResult(
            self.run_dir,
            final_step,
            checkpoint_path(self.run_dir, final_step),
            final_loss=last_loss,
            resumed_from=start_step if state is not None else None,
        )
        if ctx.is_main:
            result.metrics, result.report_path = self._evaluate(final_step)
        barrier(ctx)
        return result

    def _step(self, batches: Iterator[Any], lr: float) -> tuple[float, dict[str, float]]:
        cfg, ctx = self.cfg, self.ctx
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        parts: dict[str, float] = {}
        for _ in range(cfg.accumulate):
            if cfg.grad_cache:
                out = grad_cache_backward(
                    self.model,
                    self.objective,
                    [chunk.to(ctx.device) for chunk in next(batches)],
                    device=ctx.device,
                    autocast=self._autocast,
                    loss_weight=1.0 / cfg.accumulate,
                    scale=self.scaler.scale if self.scaler is not None else None,
                    token_views=self.token_views,
                    adjust=self.strategies.adjust_loss,
                )
            else:
                batch = next(batches).to(ctx.device)
                with self._autocast():
                    embeddings, tokens = embed_with_tokens(self.model, batch, self.token_views, batch.targets)
                    out = self.objective(embeddings, batch.present, **tokens, **batch.targets)
                    out = self.strategies.adjust_loss(out, embeddings, batch)
                loss = out.loss / cfg.accumulate
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += float(out.loss.detach())
            for key, value in out.parts.items():
                parts[key] = parts.get(key, 0.0) + float(value) / cfg.accumulate
        all_reduce_gradients(self.params, ctx)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return total / cfg.accumulate, parts

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.ctx.device.type, dtype=dtype)

    # -- outputs --------------------------------------------------------------------------------------------

    def _save(self, step: int) -> None:
        rng = [_decode_rng(b) for b in gather_bytes(_encode_rng(capture_rng_state()), self.ctx)]
        if self.ctx.is_main:
            state = TrainingState(
                step=step,
                world_size=self.ctx.world_size,
                global_batch_size=self.global_batch,
                rng=rng,
                scaler=self.scaler.state_dict() if self.scaler is not None else {},
            )
            path = save_checkpoint(
                self.run_dir,
                step,
                model=self.model,
                objective=self.objective,
                optimizer=self.optimizer,
                info=model_info(self.recipe),
                state=state,
            )
            logger.info("checkpoint %s", path)
            self.strategies.save()
        barrier(self.ctx)

    def _evaluate(self, step: int) -> tuple[dict[str, float], Path | None]:
        from scibind.evaluate.report import write_report
        from scibind.evaluate.runner import run_evaluation
        from scibind.train.run import TrainedRun, text_encoder_fn

        metrics: dict[str, float] = {}
        if self.recipe.eval.tasks:
            self.model.eval()
            self.objective.eval()
            dataset = build_dataset(self.recipe, "eval")
            run = TrainedRun(self.recipe, self.model, self.objective, step, self.run_dir)
            encode_text, text_view = text_encoder_fn(run)
            logger.info("evaluating on %d records of split %r", len(dataset), self.recipe.data.eval_split)
            metrics = run_evaluation(
                self.run_dir,
                self.model,
                dataset,
                self.recipe.eval.tasks,
                encode_text=encode_text,
                text_view=text_view,
                batch_size=self.recipe.eval.batch_size,
                device=self.ctx.device,
            )
        if self.recipe.train.compatible is not None:  # new-query / old-gallery retrieval (XBT)
            from scibind.evaluate.runner import write_metrics

            metrics.update(self.strategies.evaluate(self.model, build_dataset(self.recipe, "eval")))
            write_metrics(metrics, self.run_dir / "eval" / "metrics.json")
        return metrics, write_report(self.run_dir)


def _check_same_model(recipe: Recipe, config: Path) -> None:
    """Refuse to resume with towers, objective or embed_dim that differ from the run's ``config.yaml``."""
    if not config.is_file():
        return
    saved = load_recipe(config)
    changed = [key for key in FIXED_ON_RESUME if getattr(saved, key) != getattr(recipe, key)]
    if changed:
        raise ConfigError(
            f"cannot resume {config.parent}: the recipe's {', '.join(changed)} differ from {config}; resume "
            "with the recipe the run was started with or choose another --run-dir"
        )


def _encode_rng(state: dict[str, Any]) -> bytes:
    data = {
        "python": state["python"],
        "numpy": state["numpy"],
        "torch": state["torch"].numpy().tobytes().hex(),
        "cuda": [s.cpu().numpy().tobytes().hex() for s in state["cuda"]],
    }
    return json.dumps(data).encode("utf-8")


def _decode_rng(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw.decode("utf-8"))

    def tensor(hexed: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(bytes.fromhex(hexed)), dtype=torch.uint8).clone()

    return {
        "python": data["python"],
        "numpy": data["numpy"],
        "torch": tensor(data["torch"]),
        "cuda": [tensor(h) for h in data["cuda"]],
    }


def _append_metrics(path: Path, info: StepInfo) -> None:
    record = {
        "step": info.step,
        "loss": info.loss,
        "lr": info.lr,
        "parts": info.parts,
        "seconds": round(info.seconds, 3),
    }
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def parameter_groups(
    model: nn.Module, objective: nn.Module, recipe: Recipe, weight_decay: float
) -> list[dict[str, Any]]:
    """AdamW parameter groups: open_clip's weight-decay split, plus per-tower learning-rate scales.

    Weight matrices of the model decay; biases, norms and every objective parameter (temperature, bias,
    prototypes) do not. Parameters of towers with ``lr_scale`` / ``encoder_lr_scale`` other than 1 get
    groups of their own whose ``lr_scale`` multiplies the scheduled rate; with every scale at 1 there are
    exactly two groups (decay, no decay), as before scales existed.
    """
    scales: dict[int, float] = {}
    for view, tower in getattr(model, "towers", {}).items():
        cfg = recipe.towers.get(view)
        if cfg is None:
            continue
        for p in tower.parameters():
            scales[id(p)] = cfg.lr_scale
        encoder_scale = cfg.lr_scale if cfg.encoder_lr_scale is None else cfg.encoder_lr_scale
        for p in getattr(tower, "encoder", tower).parameters():
            scales[id(p)] = encoder_scale
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    seen: set[int] = set()
    for module, decays in ((model, True), (objective, False)):
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            key = (decays and p.ndim >= 2, scales.get(id(p), 1.0))
            groups.setdefault(key, []).append(p)
    return [
        {"params": params, "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale}
        for (decay, scale), params in groups.items()
        if params or scale == 1.0
    ]


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines after ``step`` (written by a run that was killed after its last checkpoint)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))
