"""Resumable training checkpoints: network, optimiser, step and random states, in one safetensors file.

Written atomically, so a run killed while saving keeps its previous good checkpoint. Nothing is
pickled: tensors go to safetensors, everything else to JSON metadata.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ACELib.io.safetensors import load_safetensors, save_safetensors


@dataclass
class TrainingState:
    """What a resumed run needs besides the data: weights, optimiser, position in the run."""

    step: int
    best_score: float
    best_step: int
    sampler_state: dict
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict
    torch_rng_state: torch.Tensor | None = None
    """The global torch random state at the save (None in older checkpoints). Loading does not
    apply it: the caller restores it with ``torch.set_rng_state`` where it wants to."""


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    step: int, best_score: float, best_step: int, sampler_state: dict) -> None:
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for key, val in st.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(val)
            tensors[f"optim/{idx}/{key}"] = t
    tensors["rng/torch"] = torch.get_rng_state()
    meta = {
        "step": str(step),
        "best_score": repr(best_score),
        "best_step": str(best_step),
        "sampler_state": json.dumps(sampler_state),
        "param_groups": json.dumps(opt["param_groups"]),
    }
    save_safetensors(path, tensors, meta)


def load_checkpoint(path: str | os.PathLike) -> TrainingState:
    """Read a checkpoint written by :func:`save_checkpoint`; no global state is changed.

    Raises:
        ValueError: the file lacks a checkpoint's metadata.
    """
    path = Path(path)
    tensors, meta = load_safetensors(path)
    try:
        step = int(meta["step"])
        groups = json.loads(meta["param_groups"])
        sampler_state = json.loads(meta["sampler_state"])
        best_score, best_step = float(meta["best_score"]), int(meta["best_step"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{str(path)!r} is not a training checkpoint ({exc!r})") from None
    model_state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, idx, key = k.split("/", 2)
            state.setdefault(int(idx), {})[key] = v
    for g in groups:  # JSON turned tuples into lists
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return TrainingState(step, best_score, best_step, sampler_state, model_state,
                         {"state": state, "param_groups": groups}, tensors.get("rng/torch"))
