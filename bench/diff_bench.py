"""Benchmark of the diff engine and its renderers on documents of 10 KB to 5 MB.

    .venv/bin/python bench/diff_bench.py [--sizes 10K,100K,1M,2M,5M] [--repeat 3]

The documents are the replay corpus's last versions repeated (tests.helpers.big_document). Cases:

  (a) word      one word changed in the middle
  (b) para      one paragraph rewritten in the middle (its words shuffled, two added)
  (c) sentence  one sentence inserted in the middle
  (c') two      two sentences changed, at 10 % and 90 % (the common ends cannot hide the work)
  (d) rewrite   every line's words replaced by the shuffled words of the whole text (hits the time budget)
  (e) reorder   one list shuffled in the middle (must come out as moves)
  (f) move      one section cut at 10 % and pasted at 90 %

Columns: size of the old text; case; median milliseconds of diff_versions; changed ops (non-equal word
ops in sections) and moves; sections; whether the diff fell back to whole blocks (coarse); bytes of the
text rendering (unbounded), and of the markdown (max_length 4000) and html (max_chars 16000) renderings
as notifications send them. The time budget is monitor.diff.TIME_BUDGET (1 s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor import render
from monitor.diff import TIME_BUDGET, Version, diff_versions
from monitor.models import DocumentDiff
from tests.helpers import big_document

SIZES = {"10K": 10_000, "100K": 100_000, "1M": 1_000_000, "2M": 2_000_000, "5M": 5_000_000}


def _paragraph(lines: list[str], at: float) -> int:
    """Index of the first long paragraph at or after fraction `at` of the lines."""
    k = int(len(lines) * at)
    while not (len(lines[k]) > 200 and lines[k][0].isalpha()):
        k += 1
    return k


def word(lines: list[str]) -> list[str]:
    k = _paragraph(lines, 0.5)
    lines[k] = lines[k].replace(" the ", " a ", 1)
    return lines


def para(lines: list[str]) -> list[str]:
    k = _paragraph(lines, 0.5)
    words = lines[k].split()
    random.Random(1).shuffle(words)
    lines[k] = " ".join(["Reworded:", *words, "(revised)"])
    return lines


def _sentence(lines: list[str], at: float, text: str) -> list[str]:
    k = _paragraph(lines, at)
    cut = lines[k].find(". ") + 2
    lines[k] = lines[k][:cut] + text + " " + lines[k][cut:]
    return lines


def sentence(lines: list[str]) -> list[str]:
    return _sentence(lines, 0.5, "One sentence added in the middle of the document.")


def two(lines: list[str]) -> list[str]:
    return _sentence(_sentence(lines, 0.1, "A sentence near the start."), 0.9, "A sentence near the end.")


def rewrite(lines: list[str]) -> list[str]:
    words = " ".join(lines).split()
    random.Random(2).shuffle(words)
    out, k = [], 0
    for line in lines:
        n = max(1, len(line.split()))
        out.append(" ".join(words[k:k + n]))
        k += n
    return out


def reorder(lines: list[str]) -> list[str]:
    k = int(len(lines) * 0.5)
    while not all(line.startswith("- ") for line in lines[k:k + 6]):
        k += 1
    end = k
    while lines[end].startswith("- "):
        end += 1
    items, rng = lines[k:end], random.Random(3)
    while items == lines[k:end]:
        rng.shuffle(items)
    lines[k:end] = items
    return lines


def move(lines: list[str]) -> list[str]:
    start = int(len(lines) * 0.1)
    while not lines[start].startswith("## "):
        start += 1
    end = start + 1
    while not lines[end].startswith("#"):
        end += 1
    section = lines[start:end]
    del lines[start:end]
    at = int(len(lines) * 0.9)
    while not lines[at].startswith("## "):
        at += 1
    lines[at:at] = section
    return lines


CASES: dict[str, Callable[[list[str]], list[str]]] = {
    "(a) word": word, "(b) para": para, "(c) sentence": sentence, "(c') two": two,
    "(d) rewrite": rewrite, "(e) reorder": reorder, "(f) move": move,
}


def measure(old: str, new: str, repeat: int) -> tuple[float, DocumentDiff]:
    times, diff = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        diff = diff_versions(Version("doc", None, old), Version("doc", None, new))
        times.append((time.perf_counter() - t) * 1000)
    assert diff is not None
    return statistics.median(times), diff


def row(size: str, case: str, ms: float, diff: DocumentDiff) -> str:
    ops = sum(1 for s in diff.sections for o in s.ops if o.op != "equal")
    text = len(render.render_text(diff).encode())
    md = len(render.render_markdown(diff, max_length=4000).encode())
    html = len(render.render_html(diff, max_chars=16000).encode())
    return (f"| {size:>5} | {case:<13} | {ms:>8.1f} | {ops:>6} | {len(diff.moves):>5} | {len(diff.sections):>8} | "
            f"{'yes' if diff.coarse else 'no':>6} | {text:>10} | {md:>8} | {html:>8} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"time budget {TIME_BUDGET:.1f} s; median of {args.repeat} runs\n")
    print("|  size | case          |       ms |    ops | moves | sections | coarse | text bytes | md bytes | "
          "html bytes |")
    print("|------:|---------------|---------:|-------:|------:|---------:|-------:|-----------:|---------:|"
          "-----------:|")
    for size in args.sizes.split(","):
        old = big_document(SIZES[size])
        for case, change in CASES.items():
            new = "\n".join(change(old.split("\n")))
            ms, diff = measure(old, new, args.repeat)
            print(row(f"{len(old) / 1e6:.2f}M" if len(old) >= 1e6 else f"{len(old) // 1000}K", case, ms, diff),
                  flush=True)


if __name__ == "__main__":
    main()
