r"""Published visit-sequence baselines behind the :class:`SequenceEncoder` interface.

Every model reads the shared :class:`~mash.models.embedding.VisitEmbedding` (the sum
of a visit's code vectors) instead of its paper's own visit layer, so that the
baselines differ from mash's models only in how they combine visits over time.

=========  ===========================================================  ===============
name       model                                                        reference
=========  ===========================================================  ===============
lstm       :class:`LSTMEncoder`, an LSTM over visits                    Hochreiter 1997
retain     :class:`RETAINEncoder`, reverse-time two-level attention     Choi 2016
dipole     :class:`DipoleEncoder`, bidirectional GRU + attention        Ma 2017
tlstm      :class:`TLSTMEncoder`, time-aware LSTM (memory decay)        Baytas 2017
hitanet    :class:`HiTANetEncoder`, time-aware Transformer + attention  Luo 2020
=========  ===========================================================  ===============

Padding never influences a real visit's state or the patient vector: visits are
left-aligned (``VisitBatch``), recurrences run forward from position 0 (or over each
patient's real visits reversed in place) and every attention is restricted to real
visits. Times are in days, as in :class:`~mash.models.batch.VisitBatch`.

The helpers :func:`reverse_padded`, :func:`gather_last`, :func:`masked_softmax`,
:func:`log_time_decay` hold the shared maths (with :class:`TimeVector`); the classes
only wire them together.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mash.errors import MashInputError
from mash.models.base import SequenceEncoder
from mash.models.batch import VisitBatch

__all__ = [
    "DipoleEncoder",
    "HiTANetEncoder",
    "LSTMEncoder",
    "RETAINEncoder",
    "TLSTMEncoder",
    "TimeVector",
    "baseline_registry",
    "gather_last",
    "log_time_decay",
    "masked_softmax",
    "reverse_padded",
]


# ---------------------------------------------------------------------------- helpers


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` positions; padding stays where it is.

    The map is its own inverse, so applying it twice restores ``x``.

    Parameters
    ----------
    x : Tensor, shape (B, V, ...)
    lengths : LongTensor, shape (B,)
        Real positions per row, each in ``1 .. V``.

    Returns
    -------
    Tensor, shape (B, V, ...)
        ``out[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]``, else ``x[b, t]``.

    Examples
    --------
    >>> reverse_padded(torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]]), torch.tensor([3, 2]))
    tensor([[3, 2, 1, 0],
            [5, 4, 0, 0]])
    """
    n_rows, n_pos = x.shape[:2]
    pos = torch.arange(n_pos, device=x.device).expand(n_rows, n_pos)
    last = lengths.to(x.device).unsqueeze(1) - 1
    index = torch.where(pos <= last, last - pos, pos)
    index = index.reshape(n_rows, n_pos, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def gather_last(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The entry at each row's last real position.

    Parameters
    ----------
    x : Tensor, shape (B, V, ...)
    lengths : LongTensor, shape (B,)

    Returns
    -------
    Tensor, shape (B, ...)
        ``x[b, lengths[b] - 1]``.
    """
    rows = torch.arange(x.shape[0], device=x.device)
    return x[rows, lengths.to(x.device) - 1]


def masked_softmax(scores: torch.Tensor, valid: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the ``valid`` entries only; rows with no valid entry get all zeros.

    Invalid entries get exactly zero weight and no gradient, whatever their score
    (no ``-inf`` is used, so an empty row yields zeros rather than NaN).

    Parameters
    ----------
    scores : FloatTensor, shape (..., n, ...)
    valid : BoolTensor, broadcastable to ``scores``
    dim : int
        The dimension normalised over.

    Returns
    -------
    FloatTensor, shape of ``scores``
    """
    low = torch.finfo(scores.dtype).min
    weights = torch.softmax(scores.masked_fill(~valid, low), dim=dim)
    return weights * valid


def log_time_decay(gaps: torch.Tensor) -> torch.Tensor:
    r"""T-LSTM's monotone decay for long elapsed times, :math:`g(\Delta t) = 1/\log(e + \Delta t)`.

    :math:`g(0) = 1` (no discount) and :math:`g \to 0` slowly as :math:`\Delta t` grows.

    Parameters
    ----------
    gaps : FloatTensor, any shape
        Elapsed times :math:`\Delta t \ge 0` (negative values are clamped to 0).

    Returns
    -------
    FloatTensor, shape of ``gaps``, values in (0, 1]

    Examples
    --------
    >>> log_time_decay(torch.tensor([0.0, math.e ** 2 - math.e]))
    tensor([1.0000, 0.5000])
    """
    return 1.0 / torch.log(math.e + gaps.clamp_min(0.0))


class TimeVector(nn.Module):
    r"""HiTANet's time vector: :math:`W_o\,(1 - \tanh^2(w\,s + b)) + b_o` for a scalar :math:`s`.

    Each of the ``width`` hidden units is a learned bump centred at :math:`-b/w`, so the
    output is a smooth, learned, non-monotone function of the elapsed time.

    Parameters
    ----------
    width : int
        Hidden units (the paper's selection layer has 64).
    out : int
        Output width.

    Shapes
    ------
    ``forward(s)``: FloatTensor (...) → FloatTensor (..., out).
    """

    def __init__(self, width: int, out: int) -> None:
        super().__init__()
        self.select = nn.Linear(1, width)
        self.out = nn.Linear(width, out)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Map elapsed times (already scaled) to vectors; (...) → (..., out)."""
        bumps = 1.0 - torch.tanh(self.select(s.unsqueeze(-1)) ** 2)
        return self.out(bumps)


def _visits(encoder: SequenceEncoder, batch: VisitBatch, visits: torch.Tensor | None) -> torch.Tensor:
    """Visit embeddings (B, V, dim) with padded positions set to exactly zero."""
    visits = encoder.embed(batch.codes) if visits is None else visits
    return visits.masked_fill(~batch.mask.unsqueeze(-1), 0.0)


def _intervals(batch: VisitBatch, dtype: torch.dtype) -> torch.Tensor:
    """Days since the previous visit, (B, V), exactly 0 at the first visit and padding."""
    return torch.where(batch.mask, batch.intervals, 0.0).to(dtype)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise MashInputError(f"{name} must be > 0, got {value!r}")


def _check_count(name: str, value: int) -> None:
    if value < 1:
        raise MashInputError(f"{name} must be >= 1, got {value!r}")


class _Baseline(SequenceEncoder):
    """A :class:`SequenceEncoder` with the baselines' output dropout ``self.dropout``.

    Adds no parameters, so the weights (and their random initialisation) are those of
    the subclass alone.
    """

    def __init__(
        self, n_tokens: int, dim: int, *, init: np.ndarray | None = None, dropout: float = 0.1
    ) -> None:
        super().__init__(n_tokens, dim, init=init, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def _with_last(
        self, states: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Dropped-out states (B, V, dim) and the one at each last real visit (B, dim)."""
        states = self.dropout(states)
        return states, gather_last(states, lengths)


# ----------------------------------------------------------------------------- models


class LSTMEncoder(_Baseline):
    """An LSTM over visit embeddings; the patient is the state at the last real visit.

    Parameters
    ----------
    n_tokens : int
        Vocabulary size (id 0 is ``[PAD]``).
    dim : int
        Width of visit embeddings, LSTM states and the patient vector.
    init : ndarray of float, shape (n_tokens, d0), optional
        Initial code vectors for :class:`~mash.models.embedding.VisitEmbedding`.
    dropout : float
        Dropout in the embedding, between stacked layers, and on the outputs.
    n_layers : int
        Stacked LSTM layers (1, the usual baseline).

    Shapes
    ------
    ``encode_visits(batch)``: states (B, V, dim) = the top layer's hidden states,
    patient (B, dim) = the state at position ``lengths - 1``.

    Notes
    -----
    The sequence is run unpacked over all ``V`` positions; since the LSTM only reads
    forward and real visits come first, the padding after a patient's last visit
    cannot reach any real state.

    References
    ----------
    Hochreiter, S., Schmidhuber, J. (1997). Long short-term memory. *Neural
    Computation* 9(8), 1735–1780.
    """

    def __init__(
        self,
        n_tokens: int,
        dim: int,
        *,
        init: np.ndarray | None = None,
        dropout: float = 0.1,
        n_layers: int = 1,
    ) -> None:
        super().__init__(n_tokens, dim, init=init, dropout=dropout)
        _check_count("n_layers", n_layers)
        self.lstm = nn.LSTM(
            dim, dim, num_layers=n_layers, batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
        )

    def encode_visits(
        self, batch: VisitBatch, visits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM states per visit and the state at the last real visit; see the class."""
        x = _visits(self, batch, visits)
        states, _ = self.lstm(x)
        return self._with_last(states, batch.lengths)


class RETAINEncoder(_Baseline):
    r"""RETAIN: reverse-time attention at the visit and the variable level.

    For the prediction after visit :math:`i`, two GRUs read the visits backwards,
    :math:`v_i, v_{i-1}, \dots, v_1`:

    .. math::

        g_j = \mathrm{GRU}_\alpha(\dots),\quad e_j = w_\alpha^\top g_j + b_\alpha,\quad
        \alpha = \mathrm{softmax}(e_1, \dots, e_i),

        h_j = \mathrm{GRU}_\beta(\dots),\quad \beta_j = \tanh(W_\beta h_j + b_\beta),

        c_i = \sum_{j \le i} \alpha_j\, \beta_j \odot v_j .

    Parameters
    ----------
    n_tokens : int
        Vocabulary size (id 0 is ``[PAD]``).
    dim : int
        Width of visit embeddings :math:`v_j` and contexts :math:`c_i`.
    init : ndarray of float, shape (n_tokens, d0), optional
        Initial code vectors for the visit embedding.
    dropout : float
        Dropout in the embedding and on the contexts.
    hidden : int, optional
        Width of both GRUs (default ``dim``).
    use_time : bool
        Append :math:`\log(1 + \Delta t)`, :math:`\Delta t` = days since the previous
        visit, to the GRUs' input (the paper's time extension); the context still sums
        the plain :math:`v_j`.

    Shapes
    ------
    ``encode_visits(batch)``: states (B, V, dim) with ``states[:, i] = c_i``, the
    context from visits ``0 .. i`` only (the paper's per-visit context; it re-runs
    the reverse GRUs for every prefix, so it costs O(V) times a patient vector);
    patient (B, dim) = :math:`c_T` at the last real visit. :meth:`forward` computes
    only :math:`c_T`, in one pass.

    Notes
    -----
    The paper's visit embedding is linear (:math:`v = W_{emb} x`), which makes its
    code-level contributions exact; the shared embedding here adds a LayerNorm, so
    contributions are no longer exactly linear in the codes.

    References
    ----------
    Choi, E., Bahadori, M. T., Sun, J., Kulas, J., Schuetz, A., Stewart, W. (2016).
    RETAIN: An interpretable predictive model for healthcare using reverse time
    attention mechanism. *NeurIPS 2016*.
    """

    def __init__(
        self,
        n_tokens: int,
        dim: int,
        *,
        init: np.ndarray | None = None,
        dropout: float = 0.1,
        hidden: int | None = None,
        use_time: bool = True,
    ) -> None:
        super().__init__(n_tokens, dim, init=init, dropout=dropout)
        hidden = dim if hidden is None else hidden
        width = dim + int(use_time)
        self.use_time = use_time
        self.gru_alpha = nn.GRU(width, hidden, batch_first=True)
        self.gru_beta = nn.GRU(width, hidden, batch_first=True)
        self.w_alpha = nn.Linear(hidden, 1)
        self.w_beta = nn.Linear(hidden, dim)

    def _inputs(
        self, batch: VisitBatch, visits: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Visit vectors (B, V, dim) and GRU inputs (B, V, dim [+ 1]), zero at padding."""
        v = _visits(self, batch, visits)
        if not self.use_time:
            return v, v
        gap = torch.log1p(_intervals(batch, v.dtype)).unsqueeze(-1)
        return v, torch.cat([v, gap], dim=-1)

    def _context(self, v: torch.Tensor, rnn_in: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:math:`\\sum_j \\alpha_j \\beta_j \\odot v_j` for rows (N, L, ·) of left-aligned visits."""
        lengths = mask.sum(dim=1)
        backwards = reverse_padded(rnn_in, lengths)
        g, _ = self.gru_alpha(backwards)
        h, _ = self.gru_beta(backwards)
        g, h = reverse_padded(g, lengths), reverse_padded(h, lengths)
        alpha = masked_softmax(self.w_alpha(g).squeeze(-1), mask, dim=1)
        beta = torch.tanh(self.w_beta(h))
        return (alpha.unsqueeze(-1) * beta * v).sum(dim=1)

    def encode_visits(
        self, batch: VisitBatch, visits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Contexts :math:`c_i` per visit and :math:`c_T`; see the class."""
        v, rnn_in = self._inputs(batch, visits)
        mask = batch.mask
        n_rows, n_pos = mask.shape
        # one row per (patient, real visit i): the prefix 0 .. i
        pos = torch.arange(n_pos, device=mask.device)
        prefix = (pos.view(1, 1, n_pos) <= pos.view(1, n_pos, 1)).expand(n_rows, -1, -1)
        keep = mask.reshape(-1)
        prefix = prefix.reshape(n_rows * n_pos, n_pos)[keep]
        owner = torch.arange(n_rows, device=mask.device).repeat_interleave(n_pos)[keep]
        contexts = self._context(v[owner], rnn_in[owner], prefix)
        states = v.new_zeros(n_rows * n_pos, v.shape[-1])
        states[keep] = contexts
        states = self.dropout(states.view(n_rows, n_pos, -1))
        patient = self.dropout(self._context(v, rnn_in, mask))
        return states, patient

    def forward(self, batch: VisitBatch) -> torch.Tensor:
        """Patient context :math:`c_T`, shape (B, dim), without the per-visit contexts."""
        v, rnn_in = self._inputs(batch, None)
        return self.dropout(self._context(v, rnn_in, batch.mask))


class DipoleEncoder(_Baseline):
    r"""Dipole: a bidirectional GRU with attention over the previous visits.

    With :math:`h_t = [\overrightarrow{h}_t ; \overleftarrow{h}_t]` from a bidirectional
    GRU over the real visits, the state after visit :math:`t` attends to
    :math:`h_1, \dots, h_{t-1}`:

    .. math::

        \alpha_{t,i} = \mathrm{softmax}_{i<t}\, s(h_t, h_i),\quad
        c_t = \sum_{i<t} \alpha_{t,i}\, h_i,\quad
        \tilde h_t = \tanh(W_c [c_t ; h_t] + b_c),

    with the score :math:`s` location-based (:math:`w^\top h_i + b`), general
    (:math:`h_t^\top W h_i`) or concatenation-based
    (:math:`v^\top \tanh(W [h_t ; h_i])`). At the first visit :math:`c_1 = 0`.

    Parameters
    ----------
    n_tokens : int
        Vocabulary size (id 0 is ``[PAD]``).
    dim : int
        Width of visit embeddings and of :math:`\tilde h_t`.
    init : ndarray of float, shape (n_tokens, d0), optional
        Initial code vectors for the visit embedding.
    dropout : float
        Dropout in the embedding and on :math:`\tilde h_t`.
    hidden : int, optional
        GRU width per direction (default ``dim``); :math:`h_t` has ``2 * hidden``.
    attention : {"concat", "general", "location"}
        The score function.
    attention_dim : int, optional
        Width of the concatenation score's hidden layer (default ``dim``).

    Shapes
    ------
    ``encode_visits(batch)``: states (B, V, dim) = :math:`\tilde h_t`; patient
    (B, dim) = :math:`\tilde h_T` at the last real visit.

    References
    ----------
    Ma, F., Chitta, R., Zhou, J., You, Q., Sun, T., Gao, J. (2017). Dipole: Diagnosis
    prediction in healthcare via attention-based bidirectional recurrent neural
    networks. *KDD 2017*.
    """

    ATTENTIONS = ("concat", "general", "location")

    def __init__(
        self,
        n_tokens: int,
        dim: int,
        *,
        init: np.ndarray | None = None,
        dropout: float = 0.1,
        hidden: int | None = None,
        attention: str = "concat",
        attention_dim: int | None = None,
    ) -> None:
        super().__init__(n_tokens, dim, init=init, dropout=dropout)
        if attention not in self.ATTENTIONS:
            raise MashInputError(
                f"unknown Dipole attention {attention!r}; choose one of {', '.join(self.ATTENTIONS)}"
            )
        hidden = dim if hidden is None else hidden
        both = 2 * hidden
        self.attention = attention
        self.gru_forward = nn.GRU(dim, hidden, batch_first=True)
        self.gru_backward = nn.GRU(dim, hidden, batch_first=True)
        if attention == "location":
            self.score = nn.Linear(both, 1)
        elif attention == "general":
            self.score = nn.Linear(both, both, bias=False)
        else:
            width = dim if attention_dim is None else attention_dim
            self.score_query = nn.Linear(both, width, bias=False)
            self.score_key = nn.Linear(both, width)
            self.score = nn.Linear(width, 1, bias=False)
        self.combine = nn.Linear(2 * both, dim)

    def _scores(self, h: torch.Tensor) -> torch.Tensor:
        """Scores s(h_t, h_i), shape (B, V_t, V_i)."""
        if self.attention == "location":
            return self.score(h).squeeze(-1).unsqueeze(1).expand(-1, h.shape[1], -1)
        if self.attention == "general":
            return torch.einsum("btd,bid->bti", h, self.score(h))
        mixed = self.score_query(h).unsqueeze(2) + self.score_key(h).unsqueeze(1)
        return self.score(torch.tanh(mixed)).squeeze(-1)

    def encode_visits(
        self, batch: VisitBatch, visits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`\tilde h_t` per visit and at the last real visit; see the class."""
        x = _visits(self, batch, visits)
        mask, lengths = batch.mask, batch.lengths
        forward, _ = self.gru_forward(x)
        backward, _ = self.gru_backward(reverse_padded(x, lengths))
        h = torch.cat([forward, reverse_padded(backward, lengths)], dim=-1)
        pos = torch.arange(mask.shape[1], device=mask.device)
        earlier = (pos.view(1, -1) < pos.view(-1, 1)).unsqueeze(0) & mask.unsqueeze(1)
        alpha = masked_softmax(self._scores(h), earlier, dim=-1)
        context = torch.einsum("bti,bid->btd", alpha, h)
        return self._with_last(torch.tanh(self.combine(torch.cat([context, h], dim=-1))), lengths)


class TLSTMEncoder(_Baseline):
    r"""Time-aware LSTM: the short-term part of the memory decays with the elapsed time.

    Before visit :math:`t`, the previous memory is split and its short-term part
    discounted by :math:`g(\Delta_t) = 1/\log(e + \Delta_t)` (:func:`log_time_decay`):

    .. math::

        C^S_{t-1} = \tanh(W_d C_{t-1} + b_d),\quad
        C^*_{t-1} = (C_{t-1} - C^S_{t-1}) + g(\Delta_t)\, C^S_{t-1},

    then a standard LSTM step uses :math:`C^*_{t-1}` in place of :math:`C_{t-1}`:
    :math:`C_t = f_t \odot C^*_{t-1} + i_t \odot \tilde C_t`,
    :math:`h_t = o_t \odot \tanh(C_t)`.

    Parameters
    ----------
    n_tokens : int
        Vocabulary size (id 0 is ``[PAD]``).
    dim : int
        Width of visit embeddings, memory and hidden states.
    init : ndarray of float, shape (n_tokens, d0), optional
        Initial code vectors for the visit embedding.
    dropout : float
        Dropout in the embedding and on the outputs.
    time_unit : float
        Days per unit of :math:`\Delta_t`: ``1.0`` measures the gap since the previous
        visit (``batch.intervals``) in days, ``30.0`` in months, and so on.

    Shapes
    ------
    ``encode_visits(batch)``: states (B, V, dim) = :math:`h_t`; patient (B, dim) =
    :math:`h_T` at the last real visit.

    Notes
    -----
    The cell is written out and stepped over the ``V`` positions in Python. The first
    visit has :math:`\Delta = 0`, :math:`g = 1`, so starting from :math:`C_0 = 0` is
    unaffected by the decomposition. The paper also proposes :math:`g = 1/\Delta t` for
    small gaps; only the log form, which is defined at :math:`\Delta t = 0`, is used.

    References
    ----------
    Baytas, I. M., Xiao, C., Zhang, X., Wang, F., Jain, A. K., Zhou, J. (2017).
    Patient subtyping via time-aware LSTM networks. *KDD 2017*.
    """

    def __init__(
        self,
        n_tokens: int,
        dim: int,
        *,
        init: np.ndarray | None = None,
        dropout: float = 0.1,
        time_unit: float = 1.0,
    ) -> None:
        super().__init__(n_tokens, dim, init=init, dropout=dropout)
        _check_positive("time_unit", time_unit)
        self.time_unit = float(time_unit)
        self.input_gates = nn.Linear(dim, 4 * dim)
        self.hidden_gates = nn.Linear(dim, 4 * dim, bias=False)
        self.short_term = nn.Linear(dim, dim)

    def encode_visits(
        self, batch: VisitBatch, visits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states per visit and at the last real visit; see the class."""
        x = _visits(self, batch, visits)
        decay = log_time_decay(_intervals(batch, x.dtype) / self.time_unit)
        gates_x = self.input_gates(x)
        h = x.new_zeros(x.shape[0], self.dim)
        c = x.new_zeros(x.shape[0], self.dim)
        outputs = []
        for t in range(x.shape[1]):
            short = torch.tanh(self.short_term(c))
            c = c - short + decay[:, t, None] * short
            f, i, o, candidate = (gates_x[:, t] + self.hidden_gates(h)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(candidate)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return self._with_last(torch.stack(outputs, dim=1), batch.lengths)


class HiTANetEncoder(_Baseline):
    r"""HiTANet: time-aware Transformer with a time-aware global attention.

    With :math:`\delta_j` = days from visit :math:`j` to the last visit (the prediction
    point), scaled by ``time_scale``:

    * **local**: :math:`x_j = v_j + \mathrm{TV}_{loc}(\delta_j)`, where
      :math:`\mathrm{TV}(s) = W_o(1 - \tanh^2(w s + b)) + b_o` (:class:`TimeVector`),
      then ``n_layers`` Transformer encoder layers over the real visits give
      :math:`h_j`;
    * **global**: from the last state a query :math:`q = \mathrm{ReLU}(W_q h_T)`; a
      time attention :math:`\phi = \mathrm{softmax}_j\,
      q^\top \mathrm{ReLU}(\mathrm{TV}_{glob}(\delta_j)) / \sqrt{d_q}` and a content
      attention :math:`\gamma = \mathrm{softmax}_j\, w^\top h_j`, mixed per patient by
      :math:`[\kappa_\phi, \kappa_\gamma] = \mathrm{softmax}(W_\kappa h_T)`:

    .. math::

        \psi_j = \kappa_\phi \phi_j + \kappa_\gamma \gamma_j,\qquad
        \mathrm{patient} = \sum_j \psi_j h_j .

    Parameters
    ----------
    n_tokens : int
        Vocabulary size (id 0 is ``[PAD]``).
    dim : int
        Model width (divisible by ``n_heads``).
    init : ndarray of float, shape (n_tokens, d0), optional
        Initial code vectors for the visit embedding.
    dropout : float
        Dropout in the embedding, inside the Transformer layers and on the patient.
    n_layers : int
        Transformer encoder layers (post-norm, as in the paper's code).
    n_heads : int
        Attention heads.
    ffn_dim : int, optional
        Feed-forward width (default ``4 * dim``).
    time_dim : int
        Hidden units of both time vectors (the paper's 64).
    query_dim : int
        Width of the query and of the global time vector (the paper's 64).
    time_scale : float
        Days per unit of :math:`\delta` (the paper's code uses 180).

    Shapes
    ------
    ``encode_visits(batch)``: states (B, V, dim) = :math:`h_j`; patient (B, dim) =
    :math:`\sum_j \psi_j h_j`.

    Notes
    -----
    Compared with the authors' code: the query comes from the last real visit's state
    rather than from an appended prediction-time token, and no positional encoding is
    added (the local time vector already orders the visits).

    References
    ----------
    Luo, J., Ye, M., Xiao, C., Ma, F. (2020). HiTANet: Hierarchical time-aware
    attention networks for risk prediction on electronic health records. *KDD 2020*.
    """

    def __init__(
        self,
        n_tokens: int,
        dim: int,
        *,
        init: np.ndarray | None = None,
        dropout: float = 0.1,
        n_layers: int = 1,
        n_heads: int = 4,
        ffn_dim: int | None = None,
        time_dim: int = 64,
        query_dim: int = 64,
        time_scale: float = 180.0,
    ) -> None:
        super().__init__(n_tokens, dim, init=init, dropout=dropout)
        if n_heads < 1 or dim % n_heads:
            raise MashInputError(f"dim ({dim}) must be a multiple of n_heads ({n_heads})")
        _check_count("n_layers", n_layers)
        _check_positive("time_scale", time_scale)
        self.time_scale = float(time_scale)
        self.local_time = TimeVector(time_dim, dim)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, n_heads, 4 * dim if ffn_dim is None else ffn_dim, dropout,
                batch_first=True,
            )
            for _ in range(n_layers)
        )
        self.global_time = TimeVector(time_dim, query_dim)
        self.query = nn.Linear(dim, query_dim)
        self.content = nn.Linear(dim, 1)
        self.mix = nn.Linear(dim, 2)

    def encode_visits(
        self, batch: VisitBatch, visits: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformer states per visit and the attention-pooled patient; see the class."""
        x = _visits(self, batch, visits)
        mask, lengths = batch.mask, batch.lengths
        times = torch.where(mask, batch.times, 0.0).to(x.dtype)
        to_last = (gather_last(times, lengths).unsqueeze(1) - times).clamp_min(0.0)
        delta = torch.where(mask, to_last, 0.0) / self.time_scale
        h = x + self.local_time(delta)
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=~mask)
        h = h.masked_fill(~mask.unsqueeze(-1), 0.0)
        last = gather_last(h, lengths)
        query = torch.relu(self.query(last))
        time_key = torch.relu(self.global_time(delta))
        time_scores = torch.einsum("bvq,bq->bv", time_key, query) / math.sqrt(query.shape[-1])
        phi = masked_softmax(time_scores, mask, dim=1)
        gamma = masked_softmax(self.content(h).squeeze(-1), mask, dim=1)
        kappa = torch.softmax(self.mix(last), dim=-1)
        psi = kappa[:, :1] * phi + kappa[:, 1:] * gamma
        patient = self.dropout(torch.einsum("bv,bvd->bd", psi, h))
        return h, patient


def baseline_registry() -> dict[str, type[SequenceEncoder]]:
    """The baselines by name.

    Returns
    -------
    dict of str to type
        ``"lstm"``, ``"retain"``, ``"dipole"``, ``"tlstm"``, ``"hitanet"`` mapped to
        their classes (a new dict on every call).

    Examples
    --------
    >>> sorted(baseline_registry())
    ['dipole', 'hitanet', 'lstm', 'retain', 'tlstm']
    >>> model = baseline_registry()["retain"](n_tokens=10, dim=8)
    """
    return {
        "lstm": LSTMEncoder,
        "retain": RETAINEncoder,
        "dipole": DipoleEncoder,
        "tlstm": TLSTMEncoder,
        "hitanet": HiTANetEncoder,
    }
