"""Library functions that seed torch leave the caller's random state alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mash.align.neural_ot import fit_neural_ot
from mash.models import experiment, pipeline, train


def _draws_after(fn) -> torch.Tensor:
    torch.manual_seed(1234)
    fn()
    return torch.rand(4)


def _untouched() -> torch.Tensor:
    torch.manual_seed(1234)
    return torch.rand(4)


def test_neural_ot_keeps_global_rng():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    run = lambda: fit_neural_ot(x, x, (np.arange(20), np.arange(20)), np.eye(8, dtype=np.float32), steps=3, seed=5)  # noqa: E731
    assert torch.equal(_draws_after(run), _untouched())
    a, b = run(), run()  # still seeded: the same map twice
    np.testing.assert_array_equal(a.transform(x), b.transform(x))


@pytest.mark.parametrize("fn", [train.pretrain, train.finetune, pipeline.pretrain_sites, experiment.evaluate])
def test_seeding_functions_fork_the_rng(fn):
    """Model training seeds torch only inside a forked random state."""
    assert getattr(fn, "__wrapped__", None) is not None, fn.__qualname__
