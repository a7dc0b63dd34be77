"""Neural optimal-transport map between two embedding spaces.

A residual network :math:`f_\\theta(x) = xW + g_\\theta(x)` starts at the orthogonal
Procrustes map ``W`` (``g`` is zero-initialised) and is trained on minibatches with

.. math::
   \\mathcal{L}(\\theta) = \\mathrm{OT}_\\varepsilon\\big(f_\\theta(X_B), Y_B\\big)
   + \\lambda \\frac{1}{|A|}\\sum_{(i, j) \\in A} \\lVert f_\\theta(x_i) - y_j \\rVert^2
   + \\mu \\lVert W_\\theta^\\top W_\\theta - I \\rVert_F^2

where :math:`\\mathrm{OT}_\\varepsilon` is the entropic optimal-transport cost (POT's
``ot.sinkhorn2`` on the torch backend, differentiable in the cost matrix) between a
source minibatch and a target minibatch with uniform weights, the cost being
:math:`1 - \\cos`; ``A`` are anchor pairs; the last term keeps the linear part near
orthogonal. The OT term pulls the whole source distribution onto the target one (all
codes, not only anchors), the anchor term pins down the correspondence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ot
import torch
from torch import nn

from mash._rng import isolated_torch_rng


class ResidualMap(nn.Module):
    """``x ↦ x W + MLP(x)``, ``W`` initialised from ``w0`` and the MLP's output layer at 0.

    Parameters
    ----------
    w0 : ndarray, shape (d_in, d_out)
    hidden : int
        Width of the residual MLP.
    """

    def __init__(self, w0: np.ndarray, hidden: int = 128) -> None:
        super().__init__()
        d_in, d_out = w0.shape
        self.linear = nn.Linear(d_in, d_out, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(w0.T, dtype=torch.float32))
        self.mlp = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.mlp(x)


@dataclass
class NeuralOTResult:
    """A fitted map and its training trace."""

    model: ResidualMap
    losses: list[float] = field(default_factory=list)
    ot_losses: list[float] = field(default_factory=list)
    anchor_losses: list[float] = field(default_factory=list)
    sinkhorn_unconverged: int = 0  # minibatch Sinkhorn solves that ended above their tolerance

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map rows of ``x`` (n, d_in) to (n, d_out), ℓ2-normalised, float32."""
        with torch.no_grad():
            y = self.model(torch.as_tensor(x, dtype=torch.float32))
            y = torch.nn.functional.normalize(y, dim=1)
        return y.numpy().astype(np.float32)


@isolated_torch_rng
def fit_neural_ot(
    x: np.ndarray,
    y: np.ndarray,
    anchors: tuple[np.ndarray, np.ndarray],
    w0: np.ndarray,
    *,
    steps: int = 300,
    batch_size: int = 256,
    reg: float = 0.05,
    anchor_weight: float = 1.0,
    ortho_weight: float = 0.1,
    lr: float = 1e-3,
    hidden: int = 128,
    x_weight: np.ndarray | None = None,
    y_weight: np.ndarray | None = None,
    seed: int = 0,
) -> NeuralOTResult:
    """Train a :class:`ResidualMap` from ``x`` onto ``y`` with entropic OT plus anchors.

    Parameters
    ----------
    x : ndarray, shape (n_x, d)
        Source vectors (ℓ2-normalised rows).
    y : ndarray, shape (n_y, d)
        Target vectors (ℓ2-normalised rows).
    anchors : (ndarray (m,), ndarray (m,))
        Row indices into ``x`` and ``y`` of known pairs.
    w0 : ndarray, shape (d, d)
        Initial linear map (the Procrustes solution).
    steps, batch_size, reg, anchor_weight, ortho_weight, lr, hidden
        Optimisation settings; ``reg`` is the entropic regularisation of the Sinkhorn
        cost (on a 1 − cos cost in [0, 2]).
    x_weight, y_weight : ndarray, optional
        Sampling weights of source/target rows for the OT minibatches (e.g. to use only
        codes with reliable co-occurrence); uniform if omitted.
    seed : int

    Returns
    -------
    NeuralOTResult
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = ResidualMap(w0, hidden=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    ai = torch.as_tensor(anchors[0], dtype=torch.long)
    aj = torch.as_tensor(anchors[1], dtype=torch.long)
    px = None if x_weight is None else x_weight / x_weight.sum()
    py = None if y_weight is None else y_weight / y_weight.sum()
    bx, by = min(batch_size, len(x)), min(batch_size, len(y))
    eye = torch.eye(w0.shape[1])
    result = NeuralOTResult(model)
    for _ in range(steps):
        ix = torch.as_tensor(rng.choice(len(x), bx, replace=False, p=px))
        iy = torch.as_tensor(rng.choice(len(y), by, replace=False, p=py))
        fx = torch.nn.functional.normalize(model(xt[ix]), dim=1)
        cost = 1.0 - fx @ yt[iy].T
        a = torch.full((bx,), 1.0 / bx)
        b = torch.full((by,), 1.0 / by)
        ot_loss, sk_log = ot.sinkhorn2(a, b, cost, reg, numItermax=200, stopThr=1e-6, log=True, warn=False)
        if not sk_log["err"] or not float(torch.as_tensor(sk_log["err"][-1]).detach()) < 1e-6:  # counted; warned
            result.sinkhorn_unconverged += 1
        loss = ot_loss
        if len(ai):
            take = torch.randint(len(ai), (min(len(ai), batch_size),), generator=gen)
            fa = torch.nn.functional.normalize(model(xt[ai[take]]), dim=1)
            a_loss = ((fa - yt[aj[take]]) ** 2).sum(dim=1).mean()
            loss = loss + anchor_weight * a_loss
            result.anchor_losses.append(float(a_loss.detach()))
        wl = model.linear.weight
        loss = loss + ortho_weight * ((wl @ wl.T - eye) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        result.losses.append(float(loss.detach()))
        result.ot_losses.append(float(ot_loss.detach()))
    return result
