"""The CLRS scores (``clrs._src.evaluation``), reimplemented on numpy arrays and checked against it
in the tests: accuracy for pointers, ``mask_one`` and categorical outputs, F1 for masks, mean
squared error for scalars, and their mean over an algorithm's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .clrs_data import (
    CATEGORICAL,
    MASK,
    MASK_ONE,
    MASKED,
    POINTER,
    SCALAR,
    SHOULD_BE_PERMUTATION,
    Probe as Probe,
)


def pointer_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of pointers (node indices) predicted exactly."""
    return float(np.mean(np.asarray(pred) == np.asarray(truth)))


def categorical_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy of ``argmax`` over the last axis (``mask_one`` and categorical outputs).

    ``pred`` is scores or one-hot, ``truth`` one-hot; rows of ``truth`` holding a MASKED (-1) entry
    are left out, as in ``clrs._src.evaluation._eval_one``.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    keep = np.all(truth != MASKED, axis=-1)
    hits = (np.argmax(pred, -1) == np.argmax(truth, -1)) * keep
    return float(np.sum(hits) / np.sum(keep))


def mask_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of the positives of a mask: ``pred`` are probabilities (> 0.5 is positive) or 0/1.

    Entries where ``truth`` is MASKED (-1) are left out; precision (recall) with nothing predicted
    (nothing to find) counts as 1, as in ``clrs._src.evaluation._mask_fn``.
    """
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    keep = truth != MASKED
    tp = np.sum((pred > 0.5) & (truth > 0.5) & keep)
    fp = np.sum((pred > 0.5) & (truth < 0.5) & keep)
    fn = np.sum((pred < 0.5) & (truth > 0.5) & keep)
    precision = tp / (tp + fp) if tp + fp > 0 else 1.0
    recall = tp / (tp + fn) if tp + fn > 0 else 1.0
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def scalar_mse(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean squared error (CLRS scores scalar outputs so; none of the CLRS-30 outputs is one)."""
    return float(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2))


_SCORE_FN = {
    POINTER: pointer_accuracy,
    SHOULD_BE_PERMUTATION: pointer_accuracy,
    MASK: mask_f1,
    MASK_ONE: categorical_accuracy,
    CATEGORICAL: categorical_accuracy,
    SCALAR: scalar_mse,
}


def evaluate_outputs(truths: Sequence["Probe"], hard_preds: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-output scores and their mean (``score``), like ``clrs.evaluate``.

    ``hard_preds`` holds decoded predictions: node indices for pointers, 0/1 for masks, one-hot
    (or scores) for ``mask_one``/categorical, values for scalars.
    """
    scores = {t.name: _SCORE_FN[t.type_](hard_preds[t.name], t.data) for t in truths}
    scores["score"] = sum(scores.values()) / len(scores)
    return scores
