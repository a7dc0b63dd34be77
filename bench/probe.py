"""Representation probes: how much outcome signal does each representation of a history hold?

`bench/pretrain.py` asks whether pretraining helps *fine-tuning*. This script asks the
question underneath: freeze a representation of each site-A patient's history and fit
only an L2 logistic regression on it (C chosen on each fold's validation part), on the
same folds and label subsets as `bench/pretrain.py`. If a self-supervised
representation held more outcome signal than the raw codes, its probe would beat the
bag-of-codes probe most clearly with few labels.

Representations (rows):

- **bag of codes**: which tokens the history holds, plus log(1 + visits) (the
  supervised reference of `bench/pretrain.py`);
- **LDA** (20 topics) and **truncated SVD** (64 components) of the token counts, fitted
  on the pretraining corpus (site A's histories and site B's records, harmonised
  tokens): classical unsupervised summaries;
- **encoder, untrained**: the time-aware encoder's patient vector (``[CLS]``) before any
  training, with a random code table and with the hierarchy's code table;
- **encoder, pretrained**: the same after 10 epochs of the three pretraining tasks on the
  harmonised target+aux corpus, from either code table;
- **latent θ (oracle)**: the simulator's process mixture of each patient, which no
  model sees: the ceiling of what a perfect summary of the patient could give.

    python bench/probe.py                                  # the recorded run (seed-0 world)
    python bench/probe.py --patients 1000 --pretrain-epochs 1 --targets event   # smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain import (  # noqa: E402
    OUT,
    bag_of_codes,
    label_name,
    labelled,
    prepare,
    target_history,
    token_counts,
)

from mash.models.config import ModelConfig, PretrainConfig  # noqa: E402
from mash.models.registry import make_encoder  # noqa: E402
from mash.models.splits import evaluation_splits  # noqa: E402
from mash.models.train import embed_patients, pretrain  # noqa: E402
from mash.sequences import build_sequences, concat  # noqa: E402
from mash.sites import Site  # noqa: E402
from mash.synth import simulate_latent  # noqa: E402
from mash.vocab import Vocabulary  # noqa: E402

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def probe(x, y: np.ndarray, folds: int, seed: int, labels) -> np.ndarray:  # noqa: ANN001
    """Test AUROC per fold of an L2 logistic regression on frozen features ``x``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    out = []
    for train, val, test in evaluation_splits(len(y), folds, seed, labels):
        best = None
        for c in C_GRID:
            m = LogisticRegression(C=c, max_iter=3000).fit(x[train], y[train])
            v = roc_auc_score(y[val], m.decision_function(x[val])) if len(set(y[val])) > 1 else 0.0
            if best is None or v > best[0]:
                best = (v, m)
        out.append(roc_auc_score(y[test], best[1].decision_function(x[test])))
    return np.array(out)


def standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=6000, help="patients per site")
    ap.add_argument("--conditions", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--pretrain-epochs", type=int, default=10)
    ap.add_argument("--small", type=int, default=500, help="the few-labels setting (labelled patients)")
    ap.add_argument("--targets", default="onset,event", help="binary targets, comma-separated")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    t_start = time.perf_counter()
    sim, tree = prepare(args.patients, args.conditions, args.seed, args.quiet)
    site_a, site_b = Site.load(sim / "site_A"), Site.load(sim / "site_B")
    outcomes = sim / "site_A" / "outcomes.csv"
    vocab = Vocabulary.from_hierarchy(tree)
    n_tok = len(vocab)
    corpus = concat([target_history(site_a, vocab, outcomes), build_sequences(site_b, vocab)])
    counts = token_counts(corpus, n_tok)
    latent = simulate_latent(n_patients=args.patients, n_conditions=args.conditions, seed=args.seed)
    theta = latent.patients["site_A"].theta

    from sklearn.decomposition import LatentDirichletAllocation, TruncatedSVD

    t0 = time.perf_counter()
    lda = LatentDirichletAllocation(20, learning_method="online", random_state=args.seed).fit(counts)
    svd = TruncatedSVD(64, random_state=args.seed).fit(counts)
    print(f"LDA and SVD fitted on {counts.shape[0]} records in {time.perf_counter() - t0:.0f} s", flush=True)

    encoders = {}
    for table, init in (("random table", False), ("hierarchy table", True)):
        model = ModelConfig(init=init)
        torch.manual_seed(args.seed)
        encoders[f"encoder, untrained, {table}"] = (make_encoder(model, n_tok, vocab.embedding_init()), model)
        torch.manual_seed(args.seed)
        enc = make_encoder(model, n_tok, vocab.embedding_init())
        t0 = time.perf_counter()
        pretrain(enc, corpus, model, PretrainConfig(epochs=args.pretrain_epochs, seed=args.seed),
                 quiet=args.quiet)
        print(f"pretrained ({table}) in {time.perf_counter() - t0:.0f} s", flush=True)
        encoders[f"encoder, pretrained, {table}"] = (enc, model)

    rows = []
    for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
        d = labelled(site_a, vocab, outcomes, target)
        pos = np.array([int(s[1:]) for s in d.seqs.subjects])  # A000123 -> 123
        feats = {
            "bag of codes": bag_of_codes(d.seqs, n_tok),
            "LDA, 20 topics": lda.transform(token_counts(d.seqs, n_tok)),
            "SVD, 64 components": standardise(svd.transform(token_counts(d.seqs, n_tok))),
        }
        for name, (enc, model) in encoders.items():
            feats[name] = standardise(embed_patients(enc, d.seqs, np.arange(len(d.seqs)), model))
        feats["latent θ (oracle)"] = theta[pos]
        for name, x in feats.items():
            row = {"target": target, "representation": name, "dims": x.shape[1]}
            for labels in (None, args.small):
                a = probe(x, d.labels, args.folds, args.seed, labels)
                row[label_name(labels)] = {"mean": float(a.mean()), "std": float(a.std(ddof=1)),
                                           "folds": a.tolist()}
            rows.append(row)
            print(f"{target:6s} {name:38s} {row['dims']:5d}  100% {row['100%']['mean']:.3f} ± "
                  f"{row['100%']['std']:.3f}  {args.small} {row[str(args.small)]['mean']:.3f} ± "
                  f"{row[str(args.small)]['std']:.3f}", flush=True)
    meta = {"command": " ".join(sys.argv), "date": dt.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "args": vars(args), "total_s": time.perf_counter() - t_start}
    OUT.mkdir(exist_ok=True)
    (OUT / f"probe_{args.patients}_{args.seed}.json").write_text(json.dumps({"rows": rows, "meta": meta}, indent=1))
    small = str(args.small)
    print(f"\n| target | representation | dims | probe AUROC 100% | probe AUROC {small} |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['representation']} | {r['dims']} | {r['100%']['mean']:.3f} ± "
              f"{r['100%']['std']:.3f} | {r[small]['mean']:.3f} ± {r[small]['std']:.3f} |")
    print(f"total {meta['total_s']:.0f} s")


if __name__ == "__main__":
    main()
