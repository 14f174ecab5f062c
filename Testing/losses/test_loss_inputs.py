"""Every bad input raises with a message naming the parameter, the expectation and what came."""

from __future__ import annotations

import pytest
import torch

from ACELib.losses import (
    ace_candidates,
    adaptive_cross_entropy,
    cross_entropy,
    marginal_cross_entropy,
    marginal_dice_loss,
    soft_dice_loss,
)

B, C, SPATIAL = 2, 5, (3, 4, 5)


def _good() -> dict:
    target = torch.zeros((B, *SPATIAL), dtype=torch.long)
    target[0, 0, 0, 0] = 4
    target[1, 0, 0, 0] = 2
    annotated = torch.tensor([[True, False, False, False, True], [True, True, True, True, False]])
    return {
        "logits": torch.randn(B, C, *SPATIAL),
        "target": target,
        "annotated": annotated,
        "candidates": torch.eye(C, dtype=torch.bool).expand(B, -1, -1).clone(),
    }


# (change to the good inputs, exception, message pattern): checked by every function taking them.
COMMON_CASES = {
    "logits not a tensor": ({"logits": [[0.0]]}, TypeError, r"logits must be a torch.Tensor, got list"),
    "integer logits": ({"logits": torch.zeros(B, C, *SPATIAL, dtype=torch.long)}, ValueError,
                       r"logits must be a floating point tensor, got dtype torch.int64"),
    "no spatial dimension": ({"logits": torch.zeros(B, C)}, ValueError,
                             r"logits must have shape \(B, C, \*spatial\).*got shape \(2, 5\)"),
    "one class": ({"logits": torch.zeros(B, 1, *SPATIAL)}, ValueError,
                  r"logits must have at least 2 classes .*got shape \(2, 1, 3, 4, 5\)"),
    "target not a tensor": ({"target": 0}, TypeError, r"target must be a torch.Tensor, got int"),
    "float target": ({"target": torch.zeros(B, *SPATIAL)}, ValueError,
                     r"target must be an integer tensor .*got dtype torch.float32"),
    "bool target": ({"target": torch.zeros(B, *SPATIAL, dtype=torch.bool)}, ValueError,
                    r"target must be an integer tensor .*got dtype torch.bool"),
    "target with a channel axis": ({"target": torch.zeros(B, 1, *SPATIAL, dtype=torch.long)}, ValueError,
                                   r"target must have shape \(B, \*spatial\) = \(2, 3, 4, 5\).*got \(2, 1, 3, 4, 5\)"),
    "target value C": ({"target": torch.full((B, *SPATIAL), 5)}, ValueError,
                       r"target values must be joint label indices in \[0, 5\), got values in \[5, 5\]"),
    "negative target": ({"target": torch.full((B, *SPATIAL), -1)}, ValueError,
                        r"target values must be joint label indices in \[0, 5\), got values in \[-1, -1\]"),
}

ANNOTATED_CASES = {
    "annotated not a tensor": ({"annotated": [[True] * C] * B}, TypeError,
                               r"annotated must be a torch.Tensor, got list"),
    "integer annotated": ({"annotated": torch.ones(B, C, dtype=torch.long)}, ValueError,
                          r"annotated must be a bool tensor, got dtype torch.int64"),
    "annotated shape": ({"annotated": torch.ones(B, C + 1, dtype=torch.bool)}, ValueError,
                        r"annotated must have shape \(B, C\) = \(2, 5\), got \(2, 6\)"),
    "target label not annotated": ({"annotated": torch.tensor([[True, False, False, False, False]] * B)},
                                   ValueError, r"target of sample 0 holds joint label 4, which annotated\[0\] "
                                   r"marks as not annotated"),
}

CANDIDATE_CASES = {
    "candidates not a tensor": ({"candidates": None}, TypeError, r"candidates must be a torch.Tensor, got NoneType"),
    "integer candidates": ({"candidates": torch.ones(B, C, C, dtype=torch.long)}, ValueError,
                           r"candidates must be a bool tensor, got dtype torch.int64"),
    "candidates shape": ({"candidates": torch.ones(C, C, dtype=torch.bool)}, ValueError,
                         r"candidates must have shape \(B, C, C\) = \(2, 5, 5\), got \(5, 5\)"),
    "target not its own candidate": ({"candidates": torch.ones(B, C, C, dtype=torch.bool).triu(1)}, ValueError,
                                     r"candidates\[b, t, t\] must be True .*got False at b=0, t=0"),
}

OPTION_CASES = {
    "reduction typo": ({"reduction": "avg"}, ValueError,
                       r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"),
    "weight not a tensor": ({"weight": [1.0] * C}, TypeError, r"weight must be a torch.Tensor or None, got list"),
    "weight shape": ({"weight": torch.ones(C - 1)}, ValueError, r"weight must have shape \(C,\) = \(5,\), got \(4,\)"),
    "integer weight": ({"weight": torch.ones(C, dtype=torch.long)}, ValueError,
                       r"weight must be a floating point tensor, got dtype torch.int64"),
    "negative weight": ({"weight": torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0])}, ValueError,
                        r"weight must hold finite values >= 0, got \[1.0, -1.0, 1.0, 1.0, 1.0\]"),
    "nan weight": ({"weight": torch.tensor([1.0, float("nan"), 1.0, 1.0, 1.0])}, ValueError,
                   r"weight must hold finite values >= 0"),
}

DICE_CASES = {
    "zero smooth": ({"smooth": 0.0}, ValueError, r"smooth must be a finite number > 0, got 0.0"),
    "nan smooth": ({"smooth": float("nan")}, ValueError, r"smooth must be a finite number > 0, got nan"),
    "string smooth": ({"smooth": "1e-5"}, ValueError, r"smooth must be a finite number > 0, got '1e-5'"),
    "include_background not bool": ({"include_background": "yes"}, ValueError,
                                    r"include_background must be a bool, got 'yes'"),
}

LABEL_SET_CASES = {
    "label_set typo": ({"label_set": "datset"}, ValueError,
                       r"label_set must be one of \('dataset', 'patch'\), got 'datset'"),
}

FUNCTIONS = {
    "adaptive_cross_entropy": (adaptive_cross_entropy, ("logits", "target", "annotated"),
                               {**COMMON_CASES, **ANNOTATED_CASES, **OPTION_CASES, **LABEL_SET_CASES}),
    "marginal_cross_entropy": (marginal_cross_entropy, ("logits", "target", "candidates"),
                               {**COMMON_CASES, **CANDIDATE_CASES, **OPTION_CASES}),
    "cross_entropy": (cross_entropy, ("logits", "target"), {**COMMON_CASES, **OPTION_CASES}),
    "soft_dice_loss": (soft_dice_loss, ("logits", "target"), {**COMMON_CASES, **DICE_CASES}),
    "marginal_dice_loss": (marginal_dice_loss, ("logits", "target", "annotated"),
                           {**COMMON_CASES, **ANNOTATED_CASES, **DICE_CASES}),
}

CASES = [
    pytest.param(fn_name, change, error, match, id=f"{fn_name}-{case}")
    for fn_name, (_, _, cases) in FUNCTIONS.items()
    for case, (change, error, match) in cases.items()
]


@pytest.mark.parametrize("fn_name, change, error, match", CASES)
def test_bad_input_raises_with_a_clear_message(fn_name, change, error, match):
    fn, positional, _ = FUNCTIONS[fn_name]
    inputs = {**_good(), **change}
    args = [inputs.pop(name) for name in positional]
    options = {k: v for k, v in inputs.items() if k not in ("logits", "target", "annotated", "candidates")}
    with pytest.raises(error, match=match):
        fn(*args, **options)


@pytest.mark.parametrize("fn_name", sorted(FUNCTIONS))
def test_good_inputs_pass(fn_name):
    fn, positional, _ = FUNCTIONS[fn_name]
    inputs = _good()
    loss = fn(*[inputs[name] for name in positional])
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_annotated_background_column_is_always_treated_as_annotated():
    inputs = _good()
    annotated = inputs["annotated"].clone()
    annotated[:, 0] = False
    a = adaptive_cross_entropy(inputs["logits"], inputs["target"], annotated, reduction="none")
    b = adaptive_cross_entropy(inputs["logits"], inputs["target"], inputs["annotated"], reduction="none")
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not bool(annotated[:, 0].any())  # the caller's mask is not modified


@pytest.mark.parametrize(
    "label_set, present, match",
    [
        ("patches", None, r"label_set must be one of \('dataset', 'patch'\), got 'patches'"),
        ("patch", None, r"present must be a \(B, C\) bool tensor for label_set='patch', got None"),
    ],
)
def test_ace_candidates_rejects_bad_options(label_set, present, match):
    with pytest.raises(ValueError, match=match):
        ace_candidates(_good()["annotated"], label_set, present)
