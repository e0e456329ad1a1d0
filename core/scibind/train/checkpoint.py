"""Checkpoints: safetensors + JSON only, written atomically, verified before use.

Layout of ``<run_dir>/checkpoints/step-N/``:

- ``model.safetensors``: model weights (keys ``model.<name>``) and objective parameters such as the
  temperature (keys ``objective.<name>``).
- ``model.json``: recipe name, embedding width, step, scibind version and, per tower, the encoder name and
  the plugin, distribution and version that provided it.
- ``optimizer.safetensors``: optimizer state tensors (``state.<param index>.<key>``) and each rank's torch
  RNG state (``rng.<rank>.torch`` / ``rng.<rank>.cuda.<device>`` as uint8).
- ``state.json``: step, world size, global batch size, the optimizer's non-tensor state and parameter
  groups, each rank's python and numpy RNG state, the gradient scaler's state.
- ``COMPLETE``: size and sha256 of every file above, written last.

Everything is written into ``step-N.tmp/``, fsynced, and the folder is renamed into place, so a folder
named ``step-N`` with a ``COMPLETE`` whose sizes match is a whole checkpoint; anything else is ignored by
:func:`latest_checkpoint` and rejected with :class:`CheckpointError` when asked for by name. Nothing is
ever unpickled.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from scibind.atomic import fsync_dir
from scibind.errors import CheckpointError

__all__ = [
    "COMPLETE",
    "TrainingState",
    "capture_rng_state",
    "checkpoint_path",
    "list_checkpoints",
    "latest_checkpoint",
    "load_model_state",
    "load_training_state",
    "model_info",
    "restore_rng_state",
    "save_checkpoint",
    "verify_checkpoint",
]

COMPLETE = "COMPLETE"
CHECKPOINTS = "checkpoints"
STEP_RE = re.compile(r"^step-(\d+)$")
FILES = ("model.safetensors", "model.json", "optimizer.safetensors", "state.json")


@dataclass
class TrainingState:
    """What a resumed run restores besides the weights.

    Attributes:
        step: Optimizer steps completed.
        world_size: Processes of the run that wrote the checkpoint.
        global_batch_size: Records per micro-batch over all ranks.
        rng: Per rank: ``{"python": ..., "numpy": ..., "torch": uint8 Tensor, "cuda": [uint8 Tensor]}``.
        scaler: The fp16 gradient scaler's state (empty when unused).
    """

    step: int
    world_size: int
    global_batch_size: int
    rng: list[dict[str, Any]] = field(default_factory=list)
    scaler: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint at ``step`` (it may not exist)."""
    return Path(run_dir) / CHECKPOINTS / f"step-{step}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as ``(step, folder)``, oldest first (incomplete ones are skipped)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = STEP_RE.match(child.name)
        if match and child.is_dir() and _is_complete(child):
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of ``run_dir``, or ``None`` when there is none."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def verify_checkpoint(path: str | Path, *, hashes: bool = True) -> dict[str, Any]:
    """Check that ``path`` is a complete checkpoint; return its ``COMPLETE`` record.

    Args:
        path: A ``step-N`` folder.
        hashes: Also compare sha256 digests (sizes are always compared).

    Raises:
        CheckpointError: The folder, its ``COMPLETE`` marker or a file is missing, or a size or digest
            differs (an interrupted or corrupted write).
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist; `ls {path.parent}` shows the saved steps")
    marker = path / COMPLETE
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        files = record["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is incomplete (no valid {COMPLETE} marker; the run was probably killed while "
            "writing it); resume from an earlier step or delete the folder"
        ) from exc
    for name, expected in files.items():
        file = path / name
        if not file.is_file() or file.stat().st_size != expected["size"]:
            raise CheckpointError(f"checkpoint {path}: {name} is missing or truncated; delete the folder")
        if hashes and _sha256(file) != expected["sha256"]:
            raise CheckpointError(
                f"checkpoint {path}: {name} does not match its sha256 (corrupt); delete the folder"
            )
    return record


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: torch.nn.Module,
    objective: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    info: Mapping[str, Any],
    state: TrainingState,
) -> Path:
    """Write the checkpoint of ``step`` atomically; return its folder.

    Args:
        run_dir: The run folder.
        step: Optimizer steps completed.
        model: The multi-tower model.
        objective: The objective (its parameters, e.g. the temperature, are saved with the model).
        optimizer: The optimizer whose state is saved.
        info: ``model.json`` content (see :func:`model_info`); ``step`` is added.
        state: Step, world size, RNG and scaler state.
    """
    final = checkpoint_path(run_dir, step)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    weights.update({f"objective.{k}": v for k, v in objective.state_dict().items()})
    _save_tensors(weights, tmp / "model.safetensors")

    opt_state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for index, entry in opt_state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                plain_state.setdefault(str(index), {})[key] = value
    rng_json = []
    for rank, rng in enumerate(state.rng):
        tensors[f"rng.{rank}.torch"] = rng["torch"]
        for device, cuda_state in enumerate(rng.get("cuda", [])):
            tensors[f"rng.{rank}.cuda.{device}"] = cuda_state
        rng_json.append({"python": rng["python"], "numpy": rng["numpy"]})
    _save_tensors(tensors, tmp / "optimizer.safetensors")

    _write_json(tmp / "model.json", {**info, "step": step})
    _write_json(
        tmp / "state.json",
        {
            "step": step,
            "world_size": state.world_size,
            "global_batch_size": state.global_batch_size,
            "optimizer": {"state": plain_state, "param_groups": opt_state["param_groups"]},
            "rng": rng_json,
            "scaler": state.scaler,
        },
    )
    files = {name: {"size": (tmp / name).stat().st_size, "sha256": _sha256(tmp / name)} for name in FILES}
    _write_json(tmp / COMPLETE, {"step": step, "files": files})
    fsync_dir(tmp)

    if final.exists():
        stale = root / f"{final.name}.stale"
        if stale.exists():
            shutil.rmtree(stale)
        os.replace(final, stale)
        os.replace(tmp, final)
        shutil.rmtree(stale)
    else:
        os.replace(tmp, final)
    fsync_dir(root)
    return final


def load_model_state(
    path: str | Path, model: torch.nn.Module, objective: torch.nn.Module | None = None
) -> dict[str, Any]:
    """Load weights from the checkpoint folder ``path`` into ``model`` (and ``objective``).

    Returns:
        The checkpoint's ``model.json``.

    Raises:
        CheckpointError: The checkpoint is incomplete or corrupt, or its tensors do not fit the model
            (the recipe's towers or ``embed_dim`` differ from those the checkpoint was trained with).
    """
    path = Path(path)
    verify_checkpoint(path)
    weights = _load_tensors(path / "model.safetensors")
    parts = {"model": model, "objective": objective}
    for prefix, module in parts.items():
        if module is None:
            continue
        sub = {k[len(prefix) + 1 :]: v for k, v in weights.items() if k.startswith(f"{prefix}.")}
        try:
            module.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"checkpoint {path}: the {prefix} weights do not fit the recipe's {prefix} (were towers, "
                f"encoders or embed_dim changed since training?): {exc}"
            ) from exc
    return json.loads((path / "model.json").read_text(encoding="utf-8"))


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer) -> TrainingState:
    """Restore ``optimizer`` from the checkpoint folder ``path``; return the rest of the training state.

    Raises:
        CheckpointError: The checkpoint is incomplete, corrupt or its optimizer state does not fit.
    """
    path = Path(path)
    verify_checkpoint(path)
    tensors = _load_tensors(path / "optimizer.safetensors")
    try:
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
        opt_state: dict[int, dict[str, Any]] = {}
        for index, entry in meta["optimizer"]["state"].items():
            opt_state.setdefault(int(index), {}).update(entry)
        for key, value in tensors.items():
            kind, index, name = key.split(".", 2)
            if kind == "state":
                opt_state.setdefault(int(index), {})[name] = value
        groups = meta["optimizer"]["param_groups"]
        for group in groups:
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
        optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        rng = []
        for rank, entry in enumerate(meta["rng"]):
            cuda = []
            while f"rng.{rank}.cuda.{len(cuda)}" in tensors:
                cuda.append(tensors[f"rng.{rank}.cuda.{len(cuda)}"])
            rng.append({**entry, "torch": tensors[f"rng.{rank}.torch"], "cuda": cuda})
        return TrainingState(
            step=int(meta["step"]),
            world_size=int(meta["world_size"]),
            global_batch_size=int(meta["global_batch_size"]),
            rng=rng,
            scaler=meta.get("scaler") or {},
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path}: the optimizer or training state does not fit this run ({exc}); start a new "
            "run directory or resume with the recipe the run was trained with"
        ) from exc


def capture_rng_state() -> dict[str, Any]:
    """This process's python, numpy and torch (CPU and CUDA) RNG states."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(rng: Mapping[str, Any]) -> None:
    """Restore the states captured by :func:`capture_rng_state`."""
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"].to(torch.uint8).cpu())
    if rng.get("cuda") and torch.cuda.is_available():
        states = [s.to(torch.uint8).cpu() for s in rng["cuda"]][: torch.cuda.device_count()]
        for device, s in enumerate(states):
            torch.cuda.set_rng_state(s, device)


def model_info(recipe: Any) -> dict[str, Any]:
    """``model.json`` content for ``recipe``: each tower's encoder and the plugin version that provided it."""
    import scibind
    from scibind.api import get_spec

    def provenance(kind: str, name: str) -> dict[str, Any]:
        spec = get_spec(kind, name)
        version = None
        if spec.distribution:
            try:
                version = importlib.metadata.version(spec.distribution)
            except importlib.metadata.PackageNotFoundError:
                version = None
        return {
            "name": spec.name,
            "plugin": spec.plugin,
            "distribution": spec.distribution,
            "version": version,
        }

    towers = {}
    for view, tower in recipe.towers.items():
        towers[view] = {
            "modality": recipe.modality_of(view),
            "encoder": provenance("encoders", tower.encoder),
            "projection": tower.projection,
        }
    return {
        "recipe": recipe.name,
        "embed_dim": recipe.embed_dim,
        "scibind_version": scibind.__version__,
        "towers": towers,
        "objective": provenance("objectives", recipe.objective.name),
    }


def _is_complete(path: Path) -> bool:
    try:
        verify_checkpoint(path, hashes=False)
    except CheckpointError:
        return False
    return True


def _save_tensors(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, value in tensors.items():
        value = value.detach().cpu().contiguous()
        if value.numel():
            ident = (value.untyped_storage().data_ptr(), value.storage_offset())
            if ident in seen:
                value = value.clone()
            seen.add(ident)
        out[key] = value
    save_file(out, str(path), metadata={"format": "pt"})
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); delete the checkpoint"
        ) from exc


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
