"""Invariants of the visit-sequence baselines (mash.models.baselines), on tiny batches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mash.errors import MashInputError
from mash.models.base import SequenceEncoder
from mash.models.baselines import (
    DipoleEncoder,
    baseline_registry,
    gather_last,
    log_time_decay,
    masked_softmax,
    reverse_padded,
)
from mash.models.batch import VisitBatch

N_TOKENS, DIM, V, C = 12, 8, 5, 3
NAMES = sorted(baseline_registry())


def make_batch(lengths: list[int], n_pos: int = V, seed: int = 0) -> VisitBatch:
    """Random codes (ids 1..N_TOKENS-1, some code slots padded) and increasing times."""
    g = torch.Generator().manual_seed(seed)
    b = len(lengths)
    mask = torch.arange(n_pos).expand(b, n_pos) < torch.tensor(lengths).unsqueeze(1)
    codes = torch.randint(1, N_TOKENS, (b, n_pos, C), generator=g)
    codes[:, :, 1:] *= torch.rand(b, n_pos, C - 1, generator=g) < 0.7
    codes *= mask.unsqueeze(-1)
    gaps = torch.rand(b, n_pos, generator=g) * 400.0
    gaps[:, 0] = 0.0
    times = gaps.cumsum(dim=1) * mask
    return VisitBatch(codes, times, mask)


def build(name: str, seed: int = 0, **kwargs) -> SequenceEncoder:
    torch.manual_seed(seed)
    return baseline_registry()[name](N_TOKENS, DIM, **kwargs).eval()


def test_registry_names_and_types() -> None:
    reg = baseline_registry()
    assert set(reg) == {"lstm", "retain", "dipole", "tlstm", "hitanet"}
    assert all(issubclass(cls, SequenceEncoder) for cls in reg.values())


def test_helpers() -> None:
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]])
    lengths = torch.tensor([3, 2, 1])
    assert reverse_padded(x, lengths).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0], [6, 0, 0, 0]]
    assert torch.equal(reverse_padded(reverse_padded(x, lengths), lengths), x)
    assert gather_last(x, lengths).tolist() == [3, 5, 6]
    valid = torch.tensor([[True, False, True], [False, False, False]])
    w = masked_softmax(torch.tensor([[1.0, 50.0, 1.0], [1.0, 2.0, 3.0]]), valid)
    assert torch.allclose(w, torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]))
    decay = log_time_decay(torch.tensor([0.0, 10.0, 1000.0]))
    assert decay[0] == 1.0 and bool((decay[1:] < decay[:-1]).all())


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_finite(name: str) -> None:
    model = build(name)
    batch = make_batch([5, 3, 1, 2])
    with torch.no_grad():
        states, patient = model.encode_visits(batch)
        out = model(batch)
    assert states.shape == (4, V, DIM) and patient.shape == (4, DIM) and out.shape == (4, DIM)
    assert torch.isfinite(states[batch.mask]).all() and torch.isfinite(patient).all()
    torch.testing.assert_close(out, patient, atol=1e-5, rtol=0)
    # an explicit `visits` equal to the embedding changes nothing
    with torch.no_grad():
        _, again = model.encode_visits(batch, visits=model.embed(batch.codes))
    torch.testing.assert_close(again, patient, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_padding_does_not_leak(name: str) -> None:
    model = build(name)
    batch = make_batch([5, 3, 1, 2], seed=1)
    pad = ~batch.mask
    noisy_codes = torch.where(pad.unsqueeze(-1), torch.randint(1, N_TOKENS, batch.codes.shape), batch.codes)
    noisy_times = torch.where(pad, torch.rand(batch.times.shape) * 1e4 - 5e3, batch.times)
    noisy = VisitBatch(noisy_codes, noisy_times, batch.mask)
    with torch.no_grad():
        states, patient = model.encode_visits(batch)
        states2, patient2 = model.encode_visits(noisy)
        torch.testing.assert_close(model(noisy), model(batch), atol=1e-5, rtol=0)
    torch.testing.assert_close(patient2, patient, atol=1e-5, rtol=0)
    torch.testing.assert_close(states2[batch.mask], states[batch.mask], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_alone_equals_inside_padded_batch(name: str) -> None:
    model = build(name)
    batch = make_batch([2, 6, 4, 1, 6], n_pos=6, seed=2)
    with torch.no_grad():
        together = model(batch)
        for row, n in enumerate(batch.lengths.tolist()):
            alone = VisitBatch(
                batch.codes[row : row + 1, :n], batch.times[row : row + 1, :n],
                batch.mask[row : row + 1, :n],
            )
            torch.testing.assert_close(model(alone)[0], together[row], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_single_visit_patients(name: str) -> None:
    model = build(name)
    batch = make_batch([1, 1, 1], n_pos=1, seed=3)
    with torch.no_grad():
        states, patient = model.encode_visits(batch)
    assert states.shape == (3, 1, DIM) and torch.isfinite(patient).all()
    model.train()
    model(batch).sum().backward()  # and in training mode, with gradients


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_embedding_table(name: str) -> None:
    model = build(name).train()
    model(make_batch([4, 2, 1])).pow(2).sum().backward()
    grad = model.embed.table.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad[1:].abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_training_reduces_loss(name: str) -> None:
    batch = make_batch([5, 4, 3, 2, 1, 5, 3, 2], seed=4)
    batch.codes[0, 1, 0] = 3  # make sure both classes occur
    batch.codes[1:4] = torch.where(batch.codes[1:4] == 3, 4, batch.codes[1:4])
    labels = (batch.codes == 3).flatten(1).any(dim=1).float()
    assert 0 < labels.sum() < len(labels)
    model = build(name, dropout=0.0).train()
    head = nn.Linear(DIM, 1)
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-2)

    def loss() -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(head(model(batch)).squeeze(-1), labels)

    first = loss().item()
    for _ in range(25):
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        assert loss().item() < 0.8 * first


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name: str) -> None:
    batch = make_batch([5, 2, 1], seed=5)
    outputs = []
    for _ in range(2):
        model = build(name, seed=7).train()  # dropout included
        torch.manual_seed(11)
        outputs.append(model(batch).detach())
    assert torch.equal(outputs[0], outputs[1])
    with torch.no_grad():
        other = build(name, seed=8)(batch)
    assert not torch.equal(other, build(name, seed=7)(batch).detach())


def test_dipole_attention_variants_and_bad_name() -> None:
    batch = make_batch([4, 1, 2], seed=6)
    for attention in DipoleEncoder.ATTENTIONS:
        model = build("dipole", attention=attention)
        with torch.no_grad():
            assert torch.isfinite(model(batch)).all()
    with pytest.raises(MashInputError, match="concat, general, location"):
        DipoleEncoder(N_TOKENS, DIM, attention="dot")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("tlstm", {"time_unit": 0.0}), ("hitanet", {"n_heads": 3}), ("hitanet", {"time_scale": -1.0})],
)
def test_bad_arguments_raise(name: str, kwargs: dict) -> None:
    with pytest.raises(MashInputError):
        baseline_registry()[name](N_TOKENS, DIM, **kwargs)
