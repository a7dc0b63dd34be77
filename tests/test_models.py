"""mash's time-aware Transformer and the pretraining tasks: invariants and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mash.metrics import classification_metrics, regression_metrics
from mash.models.batch import VisitBatch
from mash.models.pretraining import (
    Pretrainer,
    alter_records,
    bag_of_codes,
    contrastive_loss,
    mask_visits,
    similar_record_pairs,
)
from mash.models.splits import evaluation_splits, kfold_patients, split_patients, subsample
from mash.models.transformer import TimeAwareTransformer, TransformerEncoder, time_bias

N_TOKENS = 30


def toy_batch(b: int = 16, v: int = 6, c: int = 3, seed: int = 0) -> VisitBatch:
    """Two kinds of patient (tokens 5-14 or 15-29) with 1..v visits at increasing times."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, v + 1, (b,), generator=g)
    lengths[0] = v
    mask = torch.arange(v)[None, :] < lengths[:, None]
    kind = torch.arange(b) % 2
    low = torch.where(kind == 0, 5, 15)[:, None, None]
    width = torch.where(kind == 0, 10, 15)[:, None, None]
    codes = low + (torch.rand(b, v, c, generator=g) * width).long()
    codes = codes * mask[..., None]
    gaps = torch.rand(b, v, generator=g) * 90
    times = (torch.cumsum(gaps, dim=1) - gaps[:, :1]) * mask
    return VisitBatch(codes, times, mask)


def test_time_bias_is_minus_weight_times_interval():
    t = torch.tensor([[0.0, 365.0, 730.0]])
    w = torch.tensor([1.0, 2.0])
    bias = time_bias(t, w)
    assert bias.shape == (1, 2, 3, 3)
    assert torch.allclose(bias[0, 1, 0, 2], torch.tensor(-4.0))
    assert torch.allclose(bias[0, 0].diagonal(), torch.zeros(3))


@pytest.mark.parametrize("cls", [TimeAwareTransformer, TransformerEncoder])
def test_padding_never_changes_outputs(cls):
    torch.manual_seed(0)
    model = cls(N_TOKENS, 16, heads=2).eval()
    batch = toy_batch()
    states, patient = model.encode_visits(batch)
    assert states.shape == (16, 6, 16) and patient.shape == (16, 16)
    noisy_codes = batch.codes.clone()
    noisy_codes[~batch.mask] = 7
    noisy_times = batch.times + (~batch.mask) * 1000.0
    _, again = model.encode_visits(VisitBatch(noisy_codes, noisy_times, batch.mask))
    assert torch.allclose(patient, again, atol=1e-5)
    # a patient alone equals the same patient inside a longer padded batch
    i = int(torch.argmin(batch.lengths))
    n = int(batch.lengths[i])
    alone = model(VisitBatch(batch.codes[i : i + 1, :n], batch.times[i : i + 1, :n], batch.mask[i : i + 1, :n]))
    assert torch.allclose(alone, patient[i : i + 1], atol=1e-5)


def test_attention_weights_are_zero_on_padding_and_time_term_matters():
    torch.manual_seed(0)
    model = TimeAwareTransformer(N_TOKENS, 16, heads=2, dropout=0.0, time_init=0.5).eval()
    batch = toy_batch()
    model.encode_visits(batch, keep_weights=True)
    w = model.blocks[0].attn.last_weights  # (B, H, 1+V, 1+V)
    key_mask = torch.cat((torch.ones(len(batch), 1, dtype=torch.bool), batch.mask), dim=1)
    assert torch.all(w.masked_select(~key_mask[:, None, None, :]) == 0)
    assert torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)))
    # the same visits further apart in time give different outputs only with the time term
    stretched = VisitBatch(batch.codes, batch.times * 5, batch.mask)
    assert not torch.allclose(model(batch), model(stretched), atol=1e-4)
    plain = TransformerEncoder(N_TOKENS, 16, heads=2, dropout=0.0).eval()
    assert torch.allclose(plain(batch), plain(stretched), atol=1e-6)
    assert model.time_weights().shape == (2, 2)
    # the time embedding alone also makes outputs depend on the intervals
    emb = TimeAwareTransformer(N_TOKENS, 16, heads=2, dropout=0.0, time_embedding=True).eval()
    assert not torch.allclose(emb(batch), emb(stretched), atol=1e-4)
    # the default heads start as the plain Transformer's (w_h = 0) and learn w_h
    start = TimeAwareTransformer(N_TOKENS, 16, heads=2)
    assert np.all(start.time_weights() == 0) and start.blocks[0].attn.time_weight.requires_grad


def test_single_visit_patients_and_init_table():
    init = np.random.default_rng(0).normal(size=(N_TOKENS, 8)).astype(np.float32)
    init[0] = 0
    model = TimeAwareTransformer(N_TOKENS, 16, init=init, heads=2).eval()
    batch = VisitBatch(torch.tensor([[[3, 4]], [[5, 0]]]), torch.zeros(2, 1), torch.ones(2, 1, dtype=torch.bool))
    out = model(batch)
    assert out.shape == (2, 16) and torch.isfinite(out).all()
    assert model.embed.table.weight.shape == (N_TOKENS, 8)
    assert torch.all(model.embed.table.weight[0] == 0)


def test_similar_record_pairs_closest_and_farthest():
    records = torch.tensor([[0.0], [0.1], [5.0], [10.0]])
    pos, neg = similar_record_pairs(records, share=0.15)  # 6 pairs → 1 each
    assert pos.tolist() == [[0, 1]]
    assert neg.tolist() == [[0, 3]]
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert float(contrastive_loss(z, pos, neg, margin=1.0)) == pytest.approx(0.0)
    bag = bag_of_codes(torch.tensor([[[1, 2], [2, 0]]]), 4)
    assert torch.allclose(bag, torch.tensor([[0.0, 1.0, 2.0, 0.0]]) / np.sqrt(5))


def test_mask_visits_shares_and_never_padding_or_only_visit():
    batch = toy_batch(b=64, v=10)
    masked = mask_visits(batch.mask, 0.3, torch.Generator().manual_seed(0))
    assert not (masked & ~batch.mask).any()
    n = batch.lengths
    expected = torch.where(n >= 2, (0.3 * n.float()).round().long().clamp_min(1), 0)
    assert torch.equal(masked.sum(1), torch.minimum(expected, (n - 1).clamp_min(0)))


def test_alter_records_replaces_half_the_visits_of_half_the_records():
    batch = toy_batch(b=200, v=8)
    altered, labels = alter_records(batch, 0.5, 0.5, torch.Generator().manual_seed(1))
    assert 0.35 < labels.float().mean() < 0.65
    assert torch.equal(altered.times, batch.times) and torch.equal(altered.mask, batch.mask)
    changed = (altered.codes != batch.codes).any(dim=2)
    assert not changed[labels == 0].any()
    assert not (changed & ~batch.mask).any()


@pytest.mark.parametrize("name", ["contrastive", "masked_visit", "reasonable", "masked_code"])
def test_each_pretraining_loss_decreases(name):
    torch.manual_seed(0)
    weights = {"contrastive": (1.0, 0.0, 0.0), "masked_visit": (0.0, 1.0, 0.0), "reasonable": (0.0, 0.0, 1.0),
               "masked_code": (0.0, 0.0, 0.0)}
    encoder = TimeAwareTransformer(N_TOKENS, 32, heads=2, dropout=0.0)
    task = Pretrainer(encoder, N_TOKENS, weights=weights[name], code_weight=float(name == "masked_code"))
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    batch = toy_batch(b=64, v=6, seed=3)

    def mean_loss(n_rep: int = 8) -> float:
        gen = torch.Generator().manual_seed(99)
        with torch.no_grad():
            return float(np.mean([getattr(task(batch, gen), name).item() for _ in range(n_rep)]))

    before = mean_loss()
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        loss = task(batch, gen).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert mean_loss() < 0.8 * before


def test_pretrainer_is_seeded():
    def run() -> float:
        torch.manual_seed(0)
        enc = TimeAwareTransformer(N_TOKENS, 16, heads=2)
        task = Pretrainer(enc, N_TOKENS)
        return task(toy_batch(), torch.Generator().manual_seed(5)).total.item()

    assert run() == run()


def test_splits_are_disjoint_and_cover():
    tr, va, te = split_patients(100, seed=1)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    assert len(np.unique(np.concatenate((tr, va, te)))) == 100
    tests = []
    for tr, va, te in kfold_patients(100, 5, seed=0):
        assert not set(tr) & set(va) and not set(tr) & set(te) and not set(va) & set(te)
        assert len(tr) + len(va) + len(te) == 100 and len(va) == 10
        tests.append(te)
    assert sorted(np.concatenate(tests).tolist()) == list(range(100))
    assert len(subsample(np.arange(100), 0.1)) == 10 and len(subsample(np.arange(100), 500)) == 100
    # evaluation splits: fewer labels shrink train and val inside the same folds
    full = evaluation_splits(100, 5, seed=0)
    few = evaluation_splits(100, 5, seed=0, label_size=20)
    for (tr, va, te), (tr2, va2, te2) in zip(full, few, strict=True):
        np.testing.assert_array_equal(te, te2)
        assert set(tr2) <= set(tr) and set(va2) <= set(va) and len(tr2) + len(va2) == 20
    assert [len(s[0]) for s in evaluation_splits(100, None, seed=0)] == [70]
    tenth = evaluation_splits(100, 5, seed=0, label_size=0.1)
    assert [(len(t), len(v)) for t, v, _ in tenth] == [(7, 2)] * 5


def test_clinical_metrics_match_definitions():
    y = np.array([0, 0, 1, 1])
    m = classification_metrics(y, np.array([0.1, 0.6, 0.4, 0.9]))
    assert m["auroc"] == pytest.approx(0.75) and m["f1"] == pytest.approx(0.5)
    assert np.isnan(classification_metrics(np.zeros(3), np.ones(3))["auroc"])
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert r["rmse"] == pytest.approx(np.sqrt(1 / 3)) and r["r2"] == pytest.approx(0.5)
