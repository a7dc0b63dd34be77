"""The README's and docs/vocabulary.md's ```python examples run on the bundled sample.

Each file's fenced ``python`` blocks run in order in one namespace, in a temporary
working directory holding only a ``data`` link to the repository's ``data/``, with a
temporary text-embedding cache. The README aligns the sample and builds its hierarchy
(about 30 s on one core); docs/vocabulary.md then reads that hierarchy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(0-based line of the block's first code line, code) of every ```python block."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)), m.group(1)) for m in FENCE.finditer(text)]


def run_blocks(path: Path, workdir: Path, cache_dir: Path) -> dict[str, Any]:
    """Run a file's blocks in ``workdir``; return their namespace (tracebacks name its lines)."""
    namespace: dict[str, Any] = {"__name__": f"__{path.stem}__"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        mp.setenv("MASH_CACHE_DIR", str(cache_dir))
        for line, code in python_blocks(path):
            exec(compile("\n" * line + code, str(path), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, cache_dir) -> Path:
    work = tmp_path_factory.mktemp("readme")
    (work / "data").symlink_to(ROOT / "data", target_is_directory=True)
    return work


@pytest.fixture(scope="module")
def readme(workdir, cache_dir) -> dict[str, Any]:
    return run_blocks(ROOT / "README.md", workdir, cache_dir)


def test_fences_are_found():
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 3 and all(code.strip() for _, code in blocks)
    first_line, code = blocks[0]
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[first_line] == code.splitlines()[0]


def test_readme_examples_run_and_write_only_into_out(readme, workdir):
    vocab, ids = readme["vocab"], readme["ids"]
    assert vocab.unk_id not in ids and not vocab.unknown and not vocab.bare_codes
    assert all(vocab.ancestors(i) for i in ids)  # concepts of the sample, under a root
    assert len(vocab.codes_of(ids[0])) >= 2  # a concept spanning both sites
    assert readme["tok"].unk_token == "[UNK]" and readme["tok"].pad_token == "[PAD]"
    assert sorted(p.name for p in workdir.iterdir()) == ["data", "out"]
    assert (workdir / "out" / "sample" / "tokenizer" / "tokenizer_config.json").is_file()


def test_vocabulary_doc_examples_run_on_the_readme_hierarchy(readme, workdir, cache_dir):
    ns = run_blocks(ROOT / "docs" / "vocabulary.md", workdir, cache_dir)
    assert ns["ids"][0] != ns["vocab"].unk_id and ns["ids"][1] == ns["vocab"].unk_id
    assert ns["hf"].mask_token == "[MASK]"
    assert ns["codes"].shape[0] == ns["mask"].shape[0] > 0
    assert sorted(p.name for p in workdir.iterdir()) == ["data", "out"]
