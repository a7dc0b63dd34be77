"""``mash pretrain`` and ``mash finetune`` as Python functions (the CLI only parses).

:func:`pretrain_sites` builds the vocabulary from a hierarchy, the sites' visit
sequences, pretrains an encoder and writes a checkpoint directory.
:func:`finetune_site` reads one site's outcomes, cuts histories at the index time and
evaluates a pretrained (``checkpoint``) or fresh (``hierarchy``) encoder over patient
folds, writing metrics (JSON and a Markdown table), test predictions, the first fold's
model, the representation picture and a manifest.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mash._io import sha256_file, write_csv, write_json, write_text
from mash._rng import isolated_torch_rng
from mash._version import __version__
from mash.errors import MashInputError
from mash.hyperbolic.hierarchy import Hierarchy
from mash.models.config import (
    DEFAULT_FOLDS,
    DEFAULT_MIN_COUNT,
    DEFAULT_TASK,
    FinetuneConfig,
    ModelConfig,
    PretrainConfig,
)
from mash.sequences import Sequences, build_sequences, concat
from mash.sites import Site
from mash.vocab import Vocabulary, code_counts

__all__ = ["finetune_site", "headline_metrics", "load_site_sequences", "metrics_table", "pretrain_sites"]


def _load_hierarchy(path: str | Path) -> tuple[Hierarchy, str]:
    path = Path(path)
    if not path.is_file():
        raise MashInputError("hierarchy file not found (make one with mash build-hierarchy)", file=path)
    return Hierarchy.load(path), sha256_file(path)


def load_site_sequences(
    sites: Sequence[Site],
    vocab: Vocabulary,
    outcomes: Sequence[pd.DataFrame | None] | None = None,
) -> tuple[Sequences, dict[str, Any]]:
    """Encode every site's events with ``vocab`` and concatenate them.

    Parameters
    ----------
    sites : sequence of Site
    vocab : Vocabulary
    outcomes : sequence of (DataFrame or None), optional
        One per site (:func:`mash.models.outcomes.read_outcomes`): that site's records
        are cut at its patients' index times (:func:`~mash.models.outcomes.cut_at_index`).

    Returns
    -------
    seqs : Sequences
    stats : dict
        Per site: patients, visits, events, events whose code is unknown to the
        vocabulary (encoded as ``[UNK]``); with a cut, the index times applied, the visits
        dropped after them and the patients left without a visit (removed).

    Raises
    ------
    MashInputError
        For a site without events (text-only) or none of whose codes is in ``vocab``.
    """
    from mash.models.outcomes import cut_at_index

    for site in sites:
        if site.n_events == 0:
            raise MashInputError(
                f"site {site.name!r} has no events (a text-only site: "
                f"{site.report.get('no_events', {}).get('reason', 'no rows')}); pretraining and "
                "fine-tuning need event histories: leave this site out",
                file=site.source.get("events") or site.source.get("codes"),
            )
    parts = [build_sequences(site, vocab) for site in sites]
    for site, part in zip(sites, parts, strict=True):
        if part.stats.get("n_events", 0) and part.stats.get("n_unknown_events", 0) == part.stats["n_events"]:
            raise MashInputError(
                f"none of site {site.name!r}'s codes is in the vocabulary: is the hierarchy "
                "built from an alignment that includes this site?",
                file=site.source.get("events"),
            )
    if outcomes is not None:
        parts = [p if o is None else cut_at_index(p, o) for p, o in zip(parts, outcomes, strict=True)]
    stats = {site.name: dict(part.stats) for site, part in zip(sites, parts, strict=True)}
    return (parts[0] if len(parts) == 1 else concat(parts)), stats


@isolated_torch_rng
def pretrain_sites(
    site_dirs: Sequence[str | Path],
    hierarchy: str | Path,
    out_dir: str | Path,
    *,
    model: ModelConfig | None = None,
    config: PretrainConfig | None = None,
    min_count: int = DEFAULT_MIN_COUNT,
    harmonize: bool = True,
    until_index: bool = False,
    device: str | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Pretrain an encoder on one or more sites through the hierarchy's vocabulary.

    Parameters
    ----------
    site_dirs : sequence of path
    hierarchy : path
        GraphML from ``mash build-hierarchy``.
    out_dir : path
        Checkpoint directory (``model.pt``, ``vocab.json``, ``tokenizer.json``,
        ``pretrain_losses.csv``, ``manifest.json``).
    model : ModelConfig, optional
    config : PretrainConfig, optional
    min_count : int
        Back rare concepts off to their nearest frequent ancestor.
    harmonize : bool
        False gives every (site, code) its own token (the no-harmonisation baseline).
    until_index : bool
        Cut each site's records at the index times of ``SITE_DIR/outcomes.csv`` (sites
        without one are used whole), so that a site's outcome windows never reach an
        encoder that will be fine-tuned on them.
    device : str, optional
        ``auto`` (default: a GPU when present), ``cpu``, ``cuda``, …
    quiet : bool

    Returns
    -------
    dict
        The manifest written to ``out_dir/manifest.json``.
    """
    from mash.models.checkpoint import save_checkpoint
    from mash.models.registry import make_encoder
    from mash.models.train import pick_device, pretrain

    model = model or ModelConfig()
    config = config or PretrainConfig()
    pick_device(device)  # a device this machine lacks fails before any work
    t0 = time.perf_counter()
    tree, tree_sha = _load_hierarchy(hierarchy)
    sites = [Site.load(p) for p in site_dirs]
    vocab = Vocabulary.from_hierarchy(
        tree, counts=code_counts(sites), min_count=min_count, harmonize=harmonize
    )
    outcomes, outcome_files = None, {}
    if until_index:
        from mash.models.outcomes import read_outcomes

        files = [Path(d) / "outcomes.csv" for d in site_dirs]
        outcomes = [read_outcomes(f, None) if f.is_file() else None for f in files]
        outcome_files = {s.name: {"path": str(f), "sha256": sha256_file(f)}
                         for s, f in zip(sites, files, strict=True) if f.is_file()}
    seqs, seq_stats = load_site_sequences(sites, vocab, outcomes)
    t_data = time.perf_counter() - t0
    init = vocab.embedding_init() if model.init else None
    import torch

    torch.manual_seed(config.seed)  # the initial weights are part of the seeded run
    encoder = make_encoder(model, len(vocab), init)
    result = pretrain(encoder, seqs, model, config, device=device, quiet=quiet)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "pretrain_losses.csv", result.history)
    manifest = {
        "kind": "mash.pretrain",
        "mash_version": __version__,
        "parameters": {
            "model": dataclasses.asdict(model),
            "pretrain": dataclasses.asdict(config),
            "min_count": min_count,
            "harmonize": harmonize,
            "until_index": until_index,
            "device": str(pick_device(device)),
        },
        "inputs": {
            "hierarchy": {"path": str(hierarchy), "sha256": tree_sha},
            "sites": {s.name: {"path": str(p), "hashes": s.input_hashes} for s, p in zip(sites, site_dirs, strict=True)},
            "outcomes": outcome_files,  # the index times of --until-index
        },
        "counts": {
            "tokens": len(vocab),
            "patients": len(seqs),
            "sites": seq_stats,
            "vocabulary": dict(vocab.stats),
        },
        "losses": {
            "first_epoch": result.history.iloc[0].to_dict() if len(result.history) else {},
            "last_epoch": result.history.iloc[-1].to_dict() if len(result.history) else {},
        },
        "sequences_per_s": result.sequences_per_s,
        "timings_s": {"data": t_data, "total": time.perf_counter() - t0},
    }
    save_checkpoint(out, encoder, model, vocab, manifest)
    return manifest


def headline_metrics(task: str) -> list[str]:
    """The metrics ``mash finetune`` prints for a task."""
    return ["auroc", "auprc", "f1"] if task == "classification" else ["rmse", "r2", "explained_variance"]


def metrics_table(summary: dict[str, dict[str, float]], keys: Sequence[str]) -> str:
    """A one-row Markdown table of ``mean ± std`` for ``keys``."""
    head = "| " + " | ".join(keys) + " |"
    rule = "|" + "---|" * len(keys)
    cells = [f"{summary[k]['mean']:.3f} ± {summary[k]['std']:.3f}" for k in keys if k in summary]
    return "\n".join((head, rule, "| " + " | ".join(cells) + " |")) + "\n"


def finetune_site(
    site_dir: str | Path,
    out_dir: str | Path,
    *,
    target: str,
    outcomes: str | Path | None = None,
    checkpoint: str | Path | None = None,
    hierarchy: str | Path | None = None,
    model: ModelConfig | None = None,
    config: FinetuneConfig | None = None,
    task: str = DEFAULT_TASK,
    folds: int | None = DEFAULT_FOLDS,
    label_size: float | int | None = None,
    plot: str | Path | None = None,
    device: str | None = None,
    quiet: bool = True,
) -> dict[str, Any]:
    """Fine-tune and evaluate on one site's outcome (k-fold or one split).

    Parameters
    ----------
    site_dir : path
    out_dir : path
        Receives ``metrics.json``, ``metrics.md``, ``predictions.csv``, ``model.pt``
        (first fold's fine-tuned model), ``vocab.json``, ``tokenizer.json``,
        ``manifest.json`` and, with ``plot``, the picture.
    target : str
        Label column of the outcomes file.
    outcomes : path, optional
        Default ``SITE_DIR/outcomes.csv``.
    checkpoint : path, optional
        A ``mash pretrain`` directory: start from its encoder (its model config wins).
    hierarchy : path, optional
        Without a checkpoint: build the vocabulary from this hierarchy and train from
        scratch. With a checkpoint: must give the checkpoint's vocabulary.
    model : ModelConfig, optional
        Without a checkpoint.
    config : FinetuneConfig, optional
    task : {"auto", "classification", "regression"}
    folds : int or None
        k-fold cross-validation; None for one 0.7/0.1/0.2 split.
    label_size : float or int, optional
        Share or number of labelled (train + validation) patients.
    plot : path, optional
        PNG of the test patients' representations in 2-D coloured by outcome.
    device : str, optional
    quiet : bool

    Returns
    -------
    dict
        The manifest (with the metric summary and outcome counts).
    """
    from mash.models.checkpoint import save_checkpoint, save_head, vocab_fingerprint
    from mash.models.experiment import evaluate
    from mash.models.outcomes import attach_outcomes, infer_task, read_outcomes
    from mash.models.train import embed_patients, pick_device

    if checkpoint is None and hierarchy is None:
        raise MashInputError("give --checkpoint (a mash pretrain directory) or --hierarchy")
    config = config or FinetuneConfig()
    pick_device(device)  # a device this machine lacks fails before any work
    t0 = time.perf_counter()
    pretrained = None
    inputs: dict[str, Any] = {}
    if checkpoint is not None:
        from mash.models.checkpoint import load_checkpoint

        encoder, model, vocab, pre_manifest = load_checkpoint(checkpoint)
        pretrained = encoder.state_dict()
        inputs["checkpoint"] = {"path": str(checkpoint), "sha256": sha256_file(Path(checkpoint) / "model.pt")}
        if hierarchy is not None:  # must give the vocabulary the weights were trained on
            tree, _ = _load_hierarchy(hierarchy)
            params = pre_manifest.get("parameters", {})
            other = Vocabulary.from_hierarchy(tree, harmonize=params.get("harmonize", True))
            if params.get("min_count", 1) != 1:
                warnings.warn(
                    "--hierarchy not compared with the checkpoint: it was pretrained with "
                    "--min-count > 1, whose vocabulary depends on the pretraining sites' counts",
                    stacklevel=2,
                )
            elif vocab_fingerprint(other) != vocab_fingerprint(vocab):
                raise MashInputError(
                    f"vocabulary does not match the checkpoint: {len(other)} tokens from this "
                    f"hierarchy, {len(vocab)} in the checkpoint",
                    file=hierarchy,
                )
    else:
        tree, tree_sha = _load_hierarchy(hierarchy)
        model = model or ModelConfig()
        vocab = Vocabulary.from_hierarchy(tree)
        inputs["hierarchy"] = {"path": str(hierarchy), "sha256": tree_sha}
    site = Site.load(site_dir)
    outcomes = Path(outcomes) if outcomes is not None else Path(site_dir) / "outcomes.csv"
    table = read_outcomes(outcomes, target)
    inputs["site"] = {"path": str(site_dir), "hashes": site.input_hashes}
    inputs["outcomes"] = {"path": str(outcomes), "sha256": sha256_file(outcomes)}
    seqs, seq_stats = load_site_sequences([site], vocab)
    data = attach_outcomes(seqs, table)
    if len(data.seqs) < 10:
        raise MashInputError(
            f"only {len(data.seqs)} patients have both a {target!r} label and history", file=outcomes
        )
    values, counts = np.unique(data.labels, return_counts=True)
    if len(values) < 2:
        raise MashInputError(
            f"column {target!r} has one value only ({values[0]:g} for all {counts[0]} patients used): "
            "nothing to predict", file=outcomes,
        )
    if task == "auto":
        task = infer_task(data.labels)
    elif task == "classification" and infer_task(data.labels) != "classification":
        raise MashInputError(f"column {target!r} is not 0/1; use --task regression", file=outcomes)
    init = vocab.embedding_init() if (model.init and pretrained is None) else None
    res = evaluate(
        data, task=task, model=model, config=config, n_tokens=len(vocab), init=init,
        pretrained=pretrained, folds=folds, label_size=label_size, device=device, quiet=quiet,
    )
    summary = res.summary()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preds = res.predictions.assign(subject_id=data.seqs.subjects[res.predictions["patient"].to_numpy()])
    write_csv(out / "predictions.csv", preds[["subject_id", "fold", "y", "prediction"]])
    write_text(out / "metrics.md", metrics_table(summary, headline_metrics(task)))
    rep: dict[str, float] = {}
    if plot is not None:
        from mash.models.projection import plot_projection, project_2d, silhouettes

        test = res.predictions.loc[res.predictions["fold"] == 1, "patient"].to_numpy()
        x = embed_patients(res.first.model.encoder, data.seqs, test, model, device=device)
        y = data.labels[test]
        groups = y if task == "classification" else (y > np.median(y)).astype(int)
        rep = silhouettes(x, groups)
        plot_projection(project_2d(x), y, plot, continuous=task == "regression",
                        title=f"{target}: test patients of fold 1; silhouette {rep['silhouette']:.3f} "
                              f"(2-D {rep['silhouette_2d']:.3f})")
    manifest = {
        "kind": "mash.finetune",
        "mash_version": __version__,
        "parameters": {
            "target": target, "task": task, "folds": folds, "label_size": label_size,
            "model": dataclasses.asdict(model), "finetune": dataclasses.asdict(config),
            "pretrained": pretrained is not None, "device": str(pick_device(device)),
        },
        "inputs": inputs,
        "counts": {"sequences": seq_stats, "outcomes": data.stats},
        "metrics": {"summary": summary, "folds": res.folds.to_dict(orient="records")},
        "representation": rep,
        "timings_s": {"total": time.perf_counter() - t0},
    }
    write_json(out / "metrics.json", manifest["metrics"])
    save_checkpoint(out, res.first.model.encoder, model, vocab, manifest)
    save_head(out / "head.pt", res.first, target)
    return manifest


