"""The ``mash`` command: parse, call the API, print. No logic of its own."""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from mash._version import __version__
from mash.errors import MashError, MashInputError
from mash.models.config import (
    DEFAULT_DEVICE,
    DEFAULT_FOLDS,
    DEFAULT_MIN_COUNT,
    DEFAULT_TASK,
    MODEL_NAMES,
    TASK_CHOICES,
    TRANSFORMERS,
    FinetuneConfig,
    ModelConfig,
    PretrainConfig,
    defaults,
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def _share_or_count(text: str) -> float | int:
    """``finetune --labels``: a share in (0, 1) or a whole positive count (``1.5`` is neither)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1) or a count, got {text!r}") from None
    if 0 < value < 1:
        return value
    if value >= 1 and value.is_integer():
        return int(value)
    raise argparse.ArgumentTypeError(
        f"expected a share in (0, 1) or a whole positive count, got {text!r}"
    )


def _count_or_all(text: str) -> int | str:
    """``--conditions``: a positive count or ``all``."""
    if text.strip().lower() == "all":
        return "all"
    try:
        return _positive_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or all, got {text!r}") from None


@functools.cache
def _literals(module: str) -> dict[str, Any]:
    """Module-level literals and the literal defaults of every dataclass and function of
    ``module`` (a ``mash`` submodule), read from its source with :mod:`ast`.

    Keys are ``NAME`` for a module constant and ``Class.field`` / ``function.arg`` for
    defaults. Reading the source rather than importing it lets ``mash --help`` show the
    library's own defaults and choices for the configurations that live beside their
    heavy code (``mash.align.pipeline`` and ``mash.hyperbolic.build`` import torch,
    ``mash.synth`` pandas) without loading them, which would take seconds; the file is
    located without importing its package either. tests/test_cli_help.py checks the
    values against the imported objects.
    """
    path = Path(__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pairs: list[tuple[str, ast.expr]] = []
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            pairs += [(t.id, node.value) for t in targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.ClassDef):
            pairs += [(f"{node.name}.{st.target.id}", st.value) for st in node.body
                      if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.value is not None]
        elif isinstance(node, ast.FunctionDef):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs += [(f"{node.name}.{a.arg}", d) for a, d in
                      zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True)]
            pairs += [(f"{node.name}.{a.arg}", d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                      if d is not None]
    out: dict[str, Any] = {}
    for key, value in pairs:
        with contextlib.suppress(ValueError):  # not a literal (a call, a name): not an option's default
            out[key] = ast.literal_eval(value)
    return out


def _defaults(module: str, name: str) -> dict[str, Any]:
    """The literal defaults of dataclass or function ``name`` of ``module`` (:func:`_literals`)."""
    prefix = f"{name}."
    return {k[len(prefix):]: v for k, v in _literals(module).items() if k.startswith(prefix)}


def _choices(module: str, name: str) -> list[str]:
    """The values of tuple constant ``name`` of ``module``, as an option's choices."""
    return list(_literals(module)[name])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mash", description="Multi-site alignment of clinical codes.")
    p.add_argument("--version", action="version", version=f"mash {__version__}", help="print the version and exit")
    p.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="at most N CPU threads for torch, BLAS/OpenMP and event counting "
                        "(default: every core the process may use)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quiet_help = "no progress bars and no summary (warnings and errors are still printed)"

    d = _defaults("mash.align.pipeline", "AlignConfig")
    a = sub.add_parser("align", help="align two or more sites to a reference site",
                       description="Align every site to the reference site; writes mapping.csv, concepts.csv, "
                                   "embeddings.npz and manifest.json to OUT_DIR.")
    a.add_argument("sites", nargs="+", type=Path, metavar="SITE_DIR", help="site directories, two or more")
    a.add_argument("--reference", required=True, metavar="NAME", help="name of the reference site (required)")
    a.add_argument("--out", required=True, type=Path, metavar="OUT_DIR", help="output directory (required)")
    a.add_argument("--name", action="append", default=None, metavar="NAME",
                   help="site name overriding the directory name (repeat, in SITE_DIR order)")
    a.add_argument("--anchors", type=Path, metavar="FILE", help="CSV of known pairs: site,code,reference_code")
    a.add_argument("--text-model", metavar="PATH",
                   help="local sentence-transformers model directory (default: the bundled all-MiniLM-L6-v2)")
    a.add_argument("--cache-dir", metavar="DIR", help="embedding cache (default: $MASH_CACHE_DIR or ~/.cache/mash)")
    a.add_argument("--window-days", type=float, default=d["window_days"], metavar="D",
                   help="two codes of one subject within D days co-occur (default: %(default)s)")
    a.add_argument("--sppmi-shift", type=float, default=d["sppmi_shift"], metavar="K",
                   help="SPPMI shift: PMI − log K, 1 = PPMI (default: %(default)s)")
    a.add_argument("--text-dim", type=_positive_int, default=d["text_dim"], metavar="N",
                   help="size of the text half of the vectors (PCA) (default: the model's size)")
    a.add_argument("--cooc-dim", type=_positive_int, default=d["cooc_dim"], metavar="N",
                   help="size of the co-occurrence half (SVD rank) (default: %(default)s)")
    a.add_argument("--min-events", type=int, default=d["min_events"], metavar="N",
                   help="codes with fewer events lean on text (default: %(default)s)")
    a.add_argument("--top-k", type=_positive_int, default=d["top_k"], metavar="K",
                   help="candidates per code written to mapping.csv (default: %(default)s)")
    a.add_argument("--candidates", type=_positive_int, default=d["candidates"], metavar="N",
                   help="candidates per code from each view; their union is scored, ≥ --top-k (default: %(default)s)")
    a.add_argument("--block-rows", type=_positive_int, default=d["block_rows"], metavar="N",
                   help="query rows per block of the nearest-neighbour search (default: a 256 MB block)")
    a.add_argument("--ot-steps", type=int, default=d["ot_steps"], metavar="N",
                   help="neural OT map training steps for co-occurrence; 0 = orthogonal Procrustes only "
                        "(default: %(default)s)")
    a.add_argument("--transport", choices=_choices("mash.align.pipeline", "TRANSPORTS"), default=d["transport"],
                   help="unbalanced optimal transport over the candidate pairs as a scorer view, or none "
                        "(default: %(default)s)")
    a.add_argument("--transport-mass", choices=_choices("mash.align.pipeline", "TRANSPORT_MASSES"), default=d["transport_mass"],
                   help="code masses of that transport (default: %(default)s)")
    a.add_argument("--cross-domain", action="store_true",
                   help="let candidates cross domains (default: a code's candidates share its domain; codes "
                        "without a domain match any)")
    a.add_argument("--no-values", action="store_false", dest="use_values", default=d["use_values"],
                   help="leave lab values and units out of the scorer (default: use_values=%(default)s: value "
                        "features join it when a site has codes with at least 20 positive numeric values)")
    a.add_argument("--no-pool-medications", action="store_false", dest="pool_medications",
                   default=d["pool_medications"],
                   help="count co-occurrence per formulary entry, not per drug (default: pool_medications="
                        "%(default)s: medication codes whose names agree up to the strength share one vector)")
    a.add_argument("--concept-threshold", type=float, default=d["concept_threshold"], metavar="P",
                   help="minimum score of a mutual best match merged into one concept (default: %(default)s)")
    a.add_argument("--seed", type=int, default=d["seed"], help="seed of every random step (default: %(default)s)")
    a.add_argument("--quiet", action="store_true", help=quiet_help)

    d = _defaults("mash.hyperbolic.build", "HierarchyConfig")
    h = sub.add_parser("build-hierarchy", help="one hyperbolic hierarchy over an alignment's codes",
                       description="Build one tree over every (site, code) of an alignment; writes FILE and "
                                   "<stem>.manifest.json beside it.")
    h.add_argument("alignment", type=Path, metavar="ALIGN_OUT_DIR", help="a directory written by mash align")
    h.add_argument("--out", required=True, type=Path, metavar="FILE",
                   help="hierarchy file, .graphml or .json (required)")
    h.add_argument("--format", choices=_choices("mash.hyperbolic.hierarchy", "FORMATS"), default=None,
                   help="graphml or node-link json (default: from the suffix of --out, else graphml)")
    h.add_argument("--labels", action="append", default=None, metavar="SOURCE",
                   help="known tree to respect, in priority order (repeat): icd10cm, ccs, loinc, parents or a CSV "
                        "with columns code,parent[,site][,description]; sites' parent columns are always used "
                        "(default: none)")
    h.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the Poincaré disk (png, pdf or svg)")
    h.add_argument("--dim", type=_positive_int, default=d["dim"],
                   help="dimension of the Poincaré ball (default: %(default)s)")
    h.add_argument("--epochs", type=_positive_int, default=d["epochs"],
                   help="training epochs, each drawing as many triplets as there are concepts (default: %(default)s)")
    h.add_argument("--knn", type=_positive_int, default=d["knn"],
                   help="neighbours per concept in the similarity graph (default: %(default)s)")
    h.add_argument("--max-children", type=_positive_int, default=d["max_children"],
                   help="branching bound of compression (default: %(default)s)")
    h.add_argument("--compress", type=float, default=d["gap_quantile"], metavar="Q",
                   help="compression strength in [0, 1]; 0 keeps the binary tree (default: %(default)s)")
    h.add_argument("--decode", choices=_choices("mash.hyperbolic.decode", "METHODS"), default=d["decode"],
                   help="agglomeration by LCA depth: average, or single as in HypHC (default: %(default)s)")
    h.add_argument("--lr", type=float, default=d["lr"], help="learning rate of Riemannian Adam (default: %(default)s)")
    h.add_argument("--seed", type=int, default=d["seed"],
                   help="same inputs and seed give byte-identical files (default: %(default)s)")
    h.add_argument("--quiet", action="store_true", help=quiet_help)

    def model_options(q: argparse.ArgumentParser) -> None:
        d = ModelConfig()
        g = q.add_argument_group("model options")
        g.add_argument("--model", default=d.model, choices=list(MODEL_NAMES),
                       help="encoder: time_aware is mash's; the others are baselines (default: %(default)s)")
        g.add_argument("--dim", type=_positive_int, default=d.dim, help="vector width (default: %(default)s)")
        g.add_argument("--layers", type=_positive_int, default=None,
                       help=f"Transformer layers (time_aware and transformer only; default: {d.layers})")
        g.add_argument("--heads", type=_positive_int, default=None,
                       help=f"attention heads, dividing --dim (time_aware and transformer only; default: {d.heads})")
        g.add_argument("--dropout", type=float, default=d.dropout, help="dropout in [0, 1) (default: %(default)s)")
        g.add_argument("--max-visits", type=_positive_int, default=d.max_visits,
                       help="most recent visits kept (default: %(default)s)")
        g.add_argument("--max-codes", type=_positive_int, default=d.max_codes,
                       help="codes kept per visit (default: %(default)s)")
        g.add_argument("--no-init", action="store_true", help="random code vectors instead of the hierarchy's")

    def train_options(q: argparse.ArgumentParser, config: type) -> None:
        d = defaults(config)
        g = q.add_argument_group("training options")
        g.add_argument("--epochs", type=_positive_int, default=d["epochs"], help="training epochs (default: %(default)s)")
        g.add_argument("--batch-size", type=_positive_int, default=d["batch_size"],
                       help="patients per batch (default: %(default)s)")
        g.add_argument("--lr", type=float, default=d["lr"], help="learning rate of AdamW (default: %(default)s)")
        g.add_argument("--seed", type=int, default=d["seed"], help="seed of every random step (default: %(default)s)")
        g.add_argument("--device", default=DEFAULT_DEVICE,
                       help="auto (a GPU when present), cpu, cuda, cuda:1, ... (default: %(default)s)")
        g.add_argument("--quiet", action="store_true", help=quiet_help)

    pt = sub.add_parser("pretrain", help="pretrain the visit-sequence model on one or more sites",
                        description="Pretrain the visit-sequence model on the sites' records; requires "
                                    "--hierarchy and --out.")
    pt.add_argument("sites", nargs="+", type=Path, metavar="SITE_DIR", help="site directories, one or more")
    pt.add_argument("--hierarchy", required=True, type=Path, metavar="FILE.graphml",
                    help="from mash build-hierarchy; its concepts are the shared vocabulary (required)")
    pt.add_argument("--out", required=True, type=Path, metavar="CHECKPOINT_DIR",
                    help="checkpoint directory to write (required)")
    pt.add_argument("--min-count", type=_positive_int, default=DEFAULT_MIN_COUNT, metavar="N",
                    help="back concepts seen fewer than N times off to their nearest frequent ancestor "
                         "(default: %(default)s)")
    pt.add_argument("--no-harmonize", action="store_true",
                    help="one token per (site, code): no sharing across sites (a baseline)")
    pt.add_argument("--until-index", action="store_true",
                    help="cut each site's records at the index times of SITE_DIR/outcomes.csv, where "
                         "present, so that no outcome window enters pretraining")
    model_options(pt)
    train_options(pt, PretrainConfig)

    ft = sub.add_parser("finetune", help="fine-tune and evaluate on a site's outcome (k-fold by patient)",
                        description="Fine-tune and evaluate on one site's outcome with k-fold cross-validation "
                                    "by patient; requires --target, --out, and --checkpoint or --hierarchy "
                                    "(or both).")
    ft.add_argument("site", type=Path, metavar="SITE_DIR", help="the site directory")
    ft.add_argument("--target", required=True, metavar="COLUMN", help="label column of the outcomes file (required)")
    ft.add_argument("--out", required=True, type=Path, metavar="OUT_DIR", help="output directory (required)")
    start = ft.add_argument_group("where the model starts (give --checkpoint, --hierarchy or both)")
    start.add_argument("--checkpoint", type=Path, metavar="DIR",
                       help="a mash pretrain directory: its encoder and model options are the start")
    start.add_argument("--hierarchy", type=Path, metavar="FILE.graphml",
                       help="without --checkpoint: train from scratch on this hierarchy's vocabulary; with it: "
                            "checked to give the checkpoint's vocabulary")
    ft.add_argument("--outcomes", type=Path, metavar="FILE", help="outcomes file (default: SITE_DIR/outcomes.csv)")
    ft.add_argument("--task", choices=list(TASK_CHOICES), default=DEFAULT_TASK,
                    help="classification (0/1 labels), regression, or auto: inferred from the labels "
                         "(default: %(default)s)")
    ft.add_argument("--folds", type=int, default=DEFAULT_FOLDS, metavar="K",
                    help="k-fold cross-validation; 0 = one 0.7/0.1/0.2 split (default: %(default)s)")
    ft.add_argument("--labels", type=_share_or_count, default=None, metavar="N_OR_SHARE",
                    help="labelled patients used: a share in (0, 1) or a count (default: all)")
    ft.add_argument("--patience", type=_positive_int, default=defaults(FinetuneConfig)["patience"],
                    help="early-stopping patience in epochs (default: %(default)s)")
    ft.add_argument("--plot", type=Path, metavar="FILE.png",
                    help="2-D projection of test patients' representations coloured by outcome")
    model_options(ft)
    train_options(ft, FinetuneConfig)

    d = {**_defaults("mash.synth.config", "SimulationConfig"), **_defaults("mash.synth.pipeline", "simulate")}
    s = sub.add_parser("simulate", help="write simulated sites (diagnoses, optionally labs and drugs) with gold pairs",
                       description="Write site_A (ICD-9-CM), site_B (the reference, ICD-10-CM), more sites with "
                                   "--sites, labs and medications with --domains, gold.csv and simulation.json "
                                   "to OUT_DIR.")
    s.add_argument("out", type=Path, metavar="OUT_DIR", help="output directory")
    s.add_argument("--patients", type=_positive_int, default=d["n_patients"], metavar="N",
                   help="patients per site (default: %(default)s)")
    s.add_argument("--conditions", type=_count_or_all, default=d["n_conditions"], metavar="N|all",
                   help="ICD-9-CM conditions simulated; all: every usable one (default: %(default)s)")
    s.add_argument("--seed", type=int, default=d["seed"], help="seed of the simulation (default: %(default)s)")
    s.add_argument("--opaque", choices=_choices("mash.synth.config", "SITES"), default=d["opaque_site"],
                   help="replace this site's codes by opaque local ids")
    s.add_argument("--format", choices=_choices("mash.synth.config", "EVENTS_FORMATS"), default=d["events_format"], dest="events_format",
                   help="events file format (default: %(default)s)")
    s.add_argument("--reference-vocabulary", choices=_choices("mash.synth.config", "REFERENCE_VOCABULARIES"), default=d["reference_vocabulary"],
                   help="site_B lists the codes that occur (used) or every ICD-10-CM 2024 code (full) "
                        "(default: %(default)s)")
    s.add_argument("--unshared-share", type=float, default=d["unshared_share"], metavar="SHARE",
                   help="share in [0, 1) of conditions site_B never records, without a counterpart "
                        "(default: %(default)s)")
    s.add_argument("--sites", type=_positive_int, default=d["n_sites"], metavar="N", dest="n_sites",
                   help="sites: site_A (ICD-9-CM), site_B (reference, ICD-10-CM), then site_C, ... "
                        "(ICD-10-CM, their own populations and habits); 2 to 6 (default: %(default)s)")
    s.add_argument("--domains", default=",".join(d["domains"]), metavar="LIST",
                   help="comma-separated domains: diagnosis plus lab and/or medication "
                        f"({', '.join(_choices('mash.synth.config', 'DOMAINS'))}; default: %(default)s)")
    s.add_argument("--quiet", action="store_true", help=quiet_help)
    return p


def _say(quiet: bool, text: str) -> None:
    """A line of the run's summary (what was written, key counts): stdout, unless ``quiet``."""
    if not quiet:
        print(text, file=sys.stdout)


def _warn(text: str) -> None:
    """A warning: stderr, always (as the library's warnings, printed by :func:`main`)."""
    print(f"mash: warning: {text}", file=sys.stderr)


def _counts(counts: dict[str, int], none: str = "none") -> str:
    """``{"refined": 288, "file": 3}`` → ``288 refined, 3 file``."""
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()) or none


def _cmd_align(args: argparse.Namespace) -> int:
    from mash.align import align
    from mash.sites import Site

    names = args.name or []
    if len(names) > len(args.sites):
        raise MashError(f"{len(names)} --name values for {len(args.sites)} site directories")
    sites = []
    for i, path in enumerate(args.sites):
        sites.append(Site.load(path, name=names[i] if i < len(names) else None))
    alignment = align(
        sites,
        args.reference,
        anchors_file=args.anchors,
        text_model=args.text_model,
        cache_dir=args.cache_dir,
        window_days=args.window_days,
        sppmi_shift=args.sppmi_shift,
        text_dim=args.text_dim,
        cooc_dim=args.cooc_dim,
        min_events=args.min_events,
        top_k=args.top_k,
        candidates=args.candidates,
        block_rows=args.block_rows,
        ot_steps=args.ot_steps,
        transport=args.transport,
        transport_mass=args.transport_mass,
        concept_threshold=args.concept_threshold,
        cross_domain=args.cross_domain,
        use_values=args.use_values,
        pool_medications=args.pool_medications,
        seed=args.seed,
        quiet=args.quiet,
    )
    alignment.save(args.out)
    m = alignment.manifest
    for name, info in m["sites"].items():
        repaired = {k: v["rows"] for k, v in info["skipped_or_repaired"].items()
                    if isinstance(v, dict) and v.get("rows")
                    # a blank optional value (no numeric_value on a diagnosis row) is absent,
                    # not repaired: counted in the manifest, not listed here
                    and k not in ("rows", "codes_without_events", "blank_optional_values")}
        silent = info.get("codes_without_events", 0)
        _say(args.quiet, f"{name}: {info['codes']} codes" + (f" ({silent} without events)" if silent else "")
             + f", {info['events']} events, {info['subjects']} subjects; {info['codes_below_min_events']} codes "
             f"below --min-events lean on text; rows skipped or repaired: {_counts(repaired)}")
    for name, log in m["pairs"].items():
        if log.get("cooc_used"):
            cooc = f"used ({log.get('cooc_map')} on {log.get('cooc_anchor_pairs')} anchor pairs)"
        else:
            cooc = f"not used ({log.get('cooc_reason', '')})"
        _say(args.quiet, f"{name} → {alignment.reference}: anchors: {_counts(log.get('anchors', {}))}; "
             f"{log.get('learned_abbreviations', 0)} abbreviations learned; co-occurrence {cooc}")
    out = m["outputs"]
    _say(args.quiet, f"wrote {args.out}/: mapping.csv ({out['mapping_rows']} candidate rows), concepts.csv "
         f"({out['concepts']} concepts, {out['merged_concepts']} merged across sites), embeddings.npz "
         f"({out['embedding_rows']} rows), manifest.json; {m['timings_s']['total']:.1f} s")
    return 0


def _cmd_build_hierarchy(args: argparse.Namespace) -> int:
    from mash.hyperbolic.build import build_hierarchy

    hierarchy = build_hierarchy(
        args.alignment,
        args.labels or (),
        quiet=args.quiet,
        dim=args.dim,
        epochs=args.epochs,
        knn=args.knn,
        max_children=args.max_children,
        gap_quantile=args.compress,
        decode=args.decode,
        lr=args.lr,
        seed=args.seed,
    )
    hierarchy.save(args.out, format=args.format)
    if args.plot is not None:
        hierarchy.plot(args.plot)
    m = hierarchy.manifest
    for w in m["warnings"]:
        _warn(w)
    c, ls = m["counts"], m["label_stats"]
    placed = ls["concepts_placed_by_neighbours"]
    without = ls["concepts_unlabelled"] - placed
    _say(args.quiet, f"{c['leaves']} codes in {c['concepts']} concepts; known groups from "
         f"{', '.join(m['label_sources']) or 'none'}: {ls['concepts_labelled']} concepts labelled, "
         f"{placed} placed by their neighbours, {without} without a group")
    _say(args.quiet, f"wrote {args.out}: {c['nodes']} nodes ({c['known_groups']} known groups, {c['clusters']} "
         f"clusters, {c['concept_nodes']} multi-code concepts), depth {c['max_depth']}, at most "
         f"{c['max_children']} children; {m['timings_s']['total']:.1f} s"
         + (f"; picture {args.plot}" if args.plot else ""))
    return 0


def _model_config(args: argparse.Namespace):  # noqa: ANN202
    given = [f"--{n}" for n in ("layers", "heads") if getattr(args, n) is not None]
    if given and args.model not in TRANSFORMERS:
        raise MashInputError(f"{' and '.join(given)} apply to the Transformer models ({', '.join(TRANSFORMERS)}); "
                             f"the {args.model} baseline has no such option")
    sizes = {n: getattr(args, n) for n in ("layers", "heads") if getattr(args, n) is not None}
    return ModelConfig(model=args.model, dim=args.dim, dropout=args.dropout, max_visits=args.max_visits,
                       max_codes=args.max_codes, init=not args.no_init, **sizes)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from mash.models.pipeline import pretrain_sites

    m = pretrain_sites(
        args.sites, args.hierarchy, args.out, model=_model_config(args),
        config=PretrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed),
        min_count=args.min_count, harmonize=not args.no_harmonize, until_index=args.until_index,
        device=args.device, quiet=args.quiet,
    )
    for name, st in m["counts"]["sites"].items():
        _say(args.quiet, f"{name}: {st['n_patients']} patients, {st['n_visits']} visits, "
             f"{st['n_unknown_events']} of {st['n_events']} events with codes unknown to the vocabulary ([UNK])")
        if "n_index_times" in st:
            _say(args.quiet, f"{name}: cut at {st['n_index_times']} index times: {st['n_visits_after_cutoff']} "
                 f"visits after them dropped, {st['n_empty_after_cutoff']} patients left without a visit removed")
        elif args.until_index:
            _warn(f"{name}: no outcomes.csv, so --until-index has nothing to cut at; its records are used whole")
    first, last = m["losses"]["first_epoch"], m["losses"]["last_epoch"]
    _say(args.quiet, "losses, first → last epoch: " + ", ".join(
        f"{k} {first[k]:.3f} → {last[k]:.3f}" for k in ("contrastive", "masked_visit", "reasonable")))
    _say(args.quiet, f"wrote {args.out}/: {m['counts']['tokens']} tokens, {m['sequences_per_s']:.0f} sequences/s "
         f"on {m['parameters']['device']}; {m['timings_s']['total']:.1f} s")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from mash.models.pipeline import finetune_site

    m = finetune_site(
        args.site, args.out, target=args.target, outcomes=args.outcomes, checkpoint=args.checkpoint,
        hierarchy=args.hierarchy, model=_model_config(args),
        config=FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              patience=args.patience, seed=args.seed),
        task=args.task, folds=args.folds or None, label_size=args.labels, plot=args.plot,
        device=args.device, quiet=args.quiet,
    )
    oc = m["counts"]["outcomes"]
    _say(args.quiet, f"{oc['used']} patients used of {oc['outcome_rows']} outcome rows: {oc['not_in_cohort']} "
         f"not in the cohort (empty {args.target}), {oc['unknown_subject']} without events, "
         f"{oc['no_history']} without a visit before index_time")
    from mash.models.pipeline import headline_metrics, metrics_table

    task = m["parameters"]["task"]
    _say(args.quiet, metrics_table(m["metrics"]["summary"], headline_metrics(task)).rstrip())
    if m["representation"]:
        r = m["representation"]
        _say(args.quiet, f"representation silhouette {r['silhouette']:.3f} (2-D {r['silhouette_2d']:.3f}); "
             f"picture {args.plot}")
    _say(args.quiet, f"wrote {args.out}/ ({task}, {args.folds or 1} fold(s)); {m['timings_s']['total']:.1f} s")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from mash.synth import simulate

    res = simulate(args.out, n_patients=args.patients, seed=args.seed, n_conditions=args.conditions,
                   opaque_site=args.opaque, events_format=args.events_format,
                   reference_vocabulary=args.reference_vocabulary, quiet=args.quiet,
                   unshared_share=args.unshared_share, n_sites=args.n_sites, domains=args.domains)
    for name in res.site_dirs:
        silent = res.n_codes_without_events.get(name, 0)
        _say(args.quiet, f"{name}: {res.n_codes[name]} codes" + (f" ({silent} without events)" if silent else "")
             + f", {res.n_events[name]} events, {res.n_patients} patients")
    rates = json.loads(res.manifest_path.read_text()).get("outcomes", {}).get("sites", {})
    def fmt(value: float | None, spec: str) -> str:  # a rate of an empty group is None
        return "n/a" if value is None else format(value, spec)

    for name, r in rates.items():
        _say(args.quiet, f"{name} outcomes: onset {r['onset']}/{r['cohort']} at risk ({fmt(r['onset_rate'], '.1%')}), "
                         f"event {r['event']}/{res.n_patients} ({fmt(r['event_rate'], '.1%')}), "
                         f"mean burden {fmt(r['burden_mean'], '.2f')}")
    _say(args.quiet, f"wrote {args.out}/: site directories, {res.n_gold} gold pairs in {res.gold_path.name}"
         + (f", conditions without a counterpart in {res.unshared_path.name}" if res.unshared_path else ""))
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output that cannot be written before any computation (one line each):
    ``--out`` (OUT_DIR of simulate) that is a file, under a file or in a read-only folder,
    a ``--format`` that contradicts the suffix, a ``--plot`` of an unknown suffix."""
    from mash._io import check_out_path

    is_file = args.command == "build-hierarchy"
    check_out_path(args.out, kind="file" if is_file else "dir", option="OUT_DIR" if args.command == "simulate" else "--out")
    if is_file:
        from mash.hyperbolic.hierarchy import format_of

        format_of(args.out, args.format)
    if getattr(args, "plot", None) is not None:
        valid = _choices("mash.hyperbolic.plot", "FORMATS")
        if args.plot.suffix.lower().lstrip(".") not in valid:
            raise MashInputError(f"--plot {args.plot.name!r}: unknown suffix; valid suffixes: {', '.join(valid)}")
        check_out_path(args.plot, kind="file", option="--plot")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mash`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    handlers = {"align": _cmd_align, "build-hierarchy": _cmd_build_hierarchy, "simulate": _cmd_simulate,
                "pretrain": _cmd_pretrain, "finetune": _cmd_finetune}
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from mash.threads import limit_threads

            with limit_threads(args.threads):
                _check_outputs(args)
                return handlers[args.command](args)
    except MashError as exc:
        print(f"mash: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mash: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: one line unless --debug
        if args.debug:
            raise
        print(f"mash: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return 1
    finally:  # repairs are reported whether or not the run got to the end
        for w in caught:
            if not issubclass(w.category, (DeprecationWarning, FutureWarning)):
                print(f"mash: warning: {w.message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
