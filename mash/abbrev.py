"""Abbreviation-robust normalisation of clinical descriptions.

Local descriptions are often truncated ("Cholera d/t vib cholerae", "Mal neo stomach NOS").
Descriptions are lower-cased and tokenised; each token is then expanded by, in order:

1. expansions learned from anchor pairs (:func:`learn_from_pairs`): a query-side token
   that is a subsequence of a reference-side word with the same first letter, seen in
   the paired descriptions of known/confident matches;
2. a small dictionary of generic clinical abbreviations (``GENERIC``: "nos" →
   "unspecified", "w/o" → "without", "fx" → "fracture", ...) — general medical
   shorthand, not tied to any code;
3. prefix completion against the reference vocabulary (:func:`learn_prefixes`): a token
   absent from the reference vocabulary that is the prefix of reference words becomes
   the most frequent such word ("vib" → "vibrio").

Nothing here looks at codes or at any gold mapping.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

__all__ = ["GENERIC", "tokenize", "learn_prefixes", "learn_from_pairs", "normalize"]

#: Generic clinical shorthand (not specific to any coding system's codes).
GENERIC: dict[str, str] = {
    "nos": "unspecified",
    "nec": "other",
    "unsp": "unspecified",
    "unspec": "unspecified",
    "oth": "other",
    "w": "with",
    "w/": "with",
    "w/o": "without",
    "wo": "without",
    "d/t": "due to",
    "&": "and",
    "dis": "disease",
    "fx": "fracture",
    "neo": "neoplasm",
    "mal": "malignant",
    "malig": "malignant",
    "ca": "cancer",
    "tb": "tuberculosis",
    "ac": "acute",
    "chr": "chronic",
    "chron": "chronic",
    "hx": "history",
    "abn": "abnormal",
    "cong": "congenital",
    "compl": "complication",
    "comp": "complication",
    "inj": "injury",
    "nb": "newborn",
    "dm": "diabetes mellitus",
    "htn": "hypertension",
    "mult": "multiple",
    "hem": "hemorrhage",
    "infect": "infection",
    "disloc": "dislocation",
    "mv": "motor vehicle",
    "acc": "accident",
    "adv": "adverse",
    "eff": "effect",
    "deg": "degeneration",
    "cl": "closed",
    "opn": "open",
    "bdy": "body",
    "uncntrld": "uncontrolled",
    "uncntrl": "uncontrolled",
    "uncntr": "uncontrolled",
    "cmp": "complication",
    "ext": "external",
    "sympt": "symptom",
    "synd": "syndrome",
    "pulm": "pulmonary",
    "resp": "respiratory",
    "ven": "venous",
    "art": "artery",
    "lt": "left",
    "rt": "right",
    "bilat": "bilateral",
    "sec": "secondary",
    "prim": "primary",
    "1st": "first",
    "2nd": "second",
    "3rd": "third",
    "4th": "fourth",
    "5th": "fifth",
    "ami": "acute myocardial infarction",
    "mi": "myocardial infarction",
    "chf": "congestive heart failure",
    "copd": "chronic obstructive pulmonary disease",
    "uti": "urinary tract infection",
    "tia": "transient ischemic attack",
    "cva": "cerebrovascular accident",
    "ckd": "chronic kidney disease",
    "esrd": "end stage renal disease",
    "gerd": "gastro-esophageal reflux disease",
    "hiv": "human immunodeficiency virus",
    "dvt": "deep vein thrombosis",
    "rr": "railway",
    "cerv": "cervical",
    "lumb": "lumbar",
    "thor": "thoracic",
    "preg": "pregnancy",
    "del": "delivered",
}

_TOKEN = re.compile(r"[a-z0-9]+(?:/[a-z0-9]*)?|&")


def tokenize(text: str) -> list[str]:
    """Lower-case tokens; slash forms such as ``w/o``, ``d/t`` stay one token.

    >>> tokenize("Cholera d/t vib cholerae, NOS")
    ['cholera', 'd/t', 'vib', 'cholerae', 'nos']
    """
    return _TOKEN.findall(text.lower())


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def learn_prefixes(
    query_texts: Iterable[str], reference_texts: Iterable[str], min_len: int = 3
) -> dict[str, str]:
    """Complete truncated query tokens with the most frequent reference word they prefix.

    Parameters
    ----------
    query_texts, reference_texts : iterables of str
    min_len : int
        Shortest token considered a truncation.

    Returns
    -------
    dict
        token → expansion, only for alphabetic tokens absent from the reference vocabulary.
    """
    ref_freq: Counter[str] = Counter()
    for t in reference_texts:
        ref_freq.update(set(tokenize(t)))
    words = sorted(ref_freq)
    out: dict[str, str] = {}
    q_tokens = {tok for t in query_texts for tok in tokenize(t)}
    for tok in q_tokens:
        if tok in ref_freq or len(tok) < min_len or not tok.isalpha() or tok in GENERIC:
            continue
        i = bisect.bisect_left(words, tok)
        best, best_n = None, 0
        while i < len(words) and words[i].startswith(tok):
            if ref_freq[words[i]] > best_n:
                best, best_n = words[i], ref_freq[words[i]]
            i += 1
        if best is not None:
            out[tok] = best
    return out


def learn_from_pairs(pairs: Iterable[tuple[str, str]], min_support: int = 1) -> dict[str, str]:
    """Learn token expansions from paired (query, reference) descriptions.

    For each query token absent from its paired reference description, count the
    reference words it is a subsequence of (same first letter, the word longer than
    the token); keep the most supported word.

    Parameters
    ----------
    pairs : iterable of (str, str)
        Descriptions of anchor pairs (query side, reference side).
    min_support : int
        Minimum number of pairs supporting an expansion.

    Returns
    -------
    dict
        token → expansion.
    """
    support: dict[str, Counter[str]] = defaultdict(Counter)
    for q, r in pairs:
        q_toks = tokenize(q)
        r_toks = set(tokenize(r))
        for tok in set(q_toks):
            if tok in r_toks or not tok.isalpha() or len(tok) < 2:
                continue
            for w in r_toks:
                if len(w) > len(tok) and w[0] == tok[0] and _is_subsequence(tok, w):
                    support[tok][w] += 1
    out = {}
    for tok, counts in support.items():
        (w, n), *rest = counts.most_common(2) + [("", 0)]
        if n >= min_support and n > rest[0][1]:
            out[tok] = w
    return out


def normalize(text: str, *expansions: dict[str, str]) -> str:
    """Tokenise and expand ``text``; the first dictionary that knows a token wins.

    >>> normalize("Cholera d/t vib cholerae", {"vib": "vibrio"}, GENERIC)
    'cholera due to vibrio cholerae'
    """
    out = []
    for tok in tokenize(text):
        for table in expansions:
            if tok in table:
                out.append(table[tok])
                break
        else:
            out.append(tok)
    return " ".join(out)
