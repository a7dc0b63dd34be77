"""The evaluation harness: fine-tune and test one model over patient folds.

Used by ``mash finetune`` and ``bench/pretrain.py`` so that mash's model and every
baseline are trained, stopped and scored the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mash._rng import isolated_torch_rng
from mash.metrics import classification_metrics, regression_metrics
from mash.models.config import FinetuneConfig, ModelConfig
from mash.models.outcomes import Labelled
from mash.models.registry import encoder_from_state, make_encoder
from mash.models.splits import evaluation_splits
from mash.models.train import FinetuneResult, finetune, predict
from mash.progress import bar

__all__ = ["EvalResult", "evaluate", "f1_threshold", "score"]


def score(task: str, y: np.ndarray, pred: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Classification (AUROC, AUPRC, F1, …) or regression (RMSE, R², …) metrics."""
    if task == "classification":
        return classification_metrics(y, pred, threshold)
    return regression_metrics(y, pred)


def f1_threshold(y: np.ndarray, prob: np.ndarray) -> float:
    """The decision threshold that maximises F1 on (validation) labels ``y``.

    Parameters
    ----------
    y : ndarray of {0, 1}, shape (n,)
    prob : ndarray of float, shape (n,)

    Returns
    -------
    float
        0.5 when ``y`` has no positive.
    """
    from sklearn.metrics import precision_recall_curve

    if not np.any(y == 1):
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, prob)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


@dataclass
class EvalResult:
    """Per-fold metrics, test predictions and the first fold's fitted model.

    Attributes
    ----------
    folds : DataFrame
        One row per fold: the metrics, ``best_epoch``, ``n_train``, ``n_val``, ``n_test``.
    predictions : DataFrame
        ``patient`` (position in the labelled sequences), ``fold``, ``y``, ``prediction``.
    first : FinetuneResult
        The model fitted on the first fold (saved by ``mash finetune``).
    """

    folds: pd.DataFrame
    predictions: pd.DataFrame
    first: FinetuneResult

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and standard deviation over folds of every metric."""
        skip = {"fold", "n", "best_epoch", "n_train", "n_val", "n_test", "threshold"}
        cols = [c for c in self.folds.columns if c not in skip]
        return {
            c: {"mean": float(self.folds[c].mean()), "std": float(self.folds[c].std(ddof=1))
                if len(self.folds) > 1 else 0.0}
            for c in cols
        }


@isolated_torch_rng
def evaluate(
    data: Labelled,
    *,
    task: str,
    model: ModelConfig,
    config: FinetuneConfig,
    n_tokens: int,
    init: np.ndarray | None = None,
    pretrained: dict[str, Any] | None = None,
    folds: int | None = 5,
    label_size: float | int | None = None,
    device: str | None = None,
    quiet: bool = True,
) -> EvalResult:
    """Fine-tune a fresh (or pretrained) encoder per fold and score it on the held-out fold.

    Parameters
    ----------
    data : Labelled
    task : {"classification", "regression"}
    model : ModelConfig
    config : FinetuneConfig
    n_tokens : int
    init : ndarray, optional
        Hierarchy initialisation of the code table (when ``model.init``).
    pretrained : dict, optional
        An encoder ``state_dict`` to start every fold from.
    folds : int or None
        k-fold cross-validation by patient (each fold 0.7/0.1/0.2 for k=5); None for
        one 0.7/0.1/0.2 split.
    label_size : float or int, optional
        Labelled patients available: a share or a count of the training + validation
        patients (both are subsampled in proportion); the test folds are unchanged.
    device : str, optional
    quiet : bool

    Returns
    -------
    EvalResult
    """
    splits = evaluation_splits(len(data.seqs), folds, seed=config.seed, label_size=label_size)
    rows, preds, first = [], [], None
    for k, (train, val, test) in enumerate(bar(splits, "folds", quiet=quiet)):
        torch.manual_seed(config.seed + k)  # initial weights (the new head's too) are seeded
        if pretrained is not None:
            encoder = encoder_from_state(model, pretrained)
        else:
            encoder = make_encoder(model, n_tokens, init)
        fit = finetune(
            encoder, data.seqs, data.labels, train, val,
            task=task, model=model, config=config, device=device, quiet=True,
        )
        pred = predict(fit, data.seqs, test, model, device=device)
        y = data.labels[test]
        threshold = 0.5
        if task == "classification":  # F1's threshold is chosen on validation, never on test
            threshold = f1_threshold(data.labels[val], predict(fit, data.seqs, val, model, device=device))
        rows.append({"fold": k + 1, **score(task, y, pred, threshold), "threshold": threshold,
                     "best_epoch": fit.best_epoch,
                     "n_train": len(train), "n_val": len(val), "n_test": len(test)})
        preds.append(pd.DataFrame({"patient": test, "fold": k + 1, "y": y, "prediction": pred}))
        if first is None:
            first = fit
    return EvalResult(pd.DataFrame(rows), pd.concat(preds, ignore_index=True), first)
