"""Main-content extraction on real page structures: feedwatch's default selector vs trafilatura and readability.

    .venv/bin/python bench/extractors.py [--repeat 5] [--show PAGE] [--venv bench/.venv-extractors]

Pages: tests/fixtures/pages/NAME.html and tests/fixtures/pages/held-out/NAME.html, each with its gold document
NAME.expected.txt and a NAME.noise.html whose document is the same but whose chrome (sidebars, "last
modified", tokens, counters) differs; see tests/fixtures/pages/README.md for what each page tests. The
held-out pages were added after the default selector was tuned on the others.

Extractors, each turning a page into canonical text (monitor.normalize, one block per line):

* default       monitor.select.select() without `select` (main / [role=main] / article / body, minus nav,
                header, footer, aside, forms, scripts and hidden elements); skipped, with a note, when this
                checkout has no monitor.select yet;
* default-tags  the same without its class/id chrome words (CHROME_WORDS, CHROME_PAIRS emptied): what the
                tag rules alone do;
* trafilatura   trafilatura.extract(output_format="html", include_comments=False), its HTML normalised
                like an item's (so headings stay headings);
* traf-precise  the same with favor_precision=True;
* readability   readability-lxml Document(page).summary(html_partial=True), normalised the same way.

trafilatura and readability-lxml are not feedwatch dependencies: they run in their own virtual environment
(bench/.venv-extractors, created with pip on first use; --venv to use another), in a worker process.

Columns: words in the gold text; precision and recall of the output's words against the gold's (multisets
of lower-cased \\w+ words); headings of the gold found as a line of their own in the output ("as #": found
as a heading line, which section-aware diffs need); whether the output is identical on the noise variant;
the median milliseconds per page (parsing included, the noise page excluded) over --repeat runs. The summary
gives micro averages (every gold word counts once) for the pages the default was tuned on, for the held-out
pages and for all.
--show PAGE prints each extractor's output for that page as a diff against the gold text.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import statistics
import subprocess
import sys
import time
import venv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.normalize import canonical_text  # noqa: E402

PAGES = ROOT / "tests" / "fixtures" / "pages"
VENV = ROOT / "bench" / ".venv-extractors"
REQUIREMENTS = ["trafilatura>=2.0,<3", "readability-lxml>=0.8.1,<1", "lxml_html_clean>=0.4,<1"]
THIRD_PARTY = ("trafilatura", "traf-precise", "readability")
EXTRACTORS = ("default", "default-tags", *THIRD_PARTY)
# Pages added after the default was tuned on the others (tests/fixtures/pages/README.md, "Held out"); they
# live apart so that tests/test_select.py, which holds the default to the gold text, does not tune on them.
HELD_OUT_DIR = PAGES / "held-out"
WORD = re.compile(r"\w+")


# ------------------------------------------------------------------------------------------ extractors


def load(name: str) -> tuple[Callable[[bytes], str] | None, str]:
    """The extractor `name` as page bytes -> canonical text, or None and why it is not available."""
    if name == "default":
        try:
            from monitor import select as sel
        except ImportError:
            return None, "monitor.select is not in this checkout yet"

        def default(body: bytes) -> str:
            root = sel.parse_html(body, "text/html; charset=utf-8")
            return "" if root is None else canonical_text(sel.select(root).html)
        return default, ""
    if name == "default-tags":
        return _tags_only()
    if name in ("trafilatura", "traf-precise"):
        import trafilatura

        precise = name == "traf-precise"

        def traf(body: bytes) -> str:
            html = trafilatura.extract(body.decode("utf-8"), output_format="html", include_comments=False,
                                       favor_precision=precise)
            return canonical_text(html or "")
        return traf, ""
    if name == "readability":
        from readability import Document

        def readability(body: bytes) -> str:
            return canonical_text(Document(body.decode("utf-8")).summary(html_partial=True))
        return readability, ""
    raise ValueError(name)


def _tags_only() -> tuple[Callable[[bytes], str] | None, str]:
    """The default without its class/id chrome words: only the tag rules of DESIGN.md section 2b."""
    default, why = load("default")
    try:
        from monitor import select as sel
    except ImportError:
        return None, why
    names = [n for n in ("CHROME_WORDS", "CHROME_PAIRS") if hasattr(sel, n)]
    if default is None or not names:
        return None, why or "monitor.select has no CHROME_WORDS to leave out"
    run = default

    def tags_only(body: bytes) -> str:
        saved = {n: getattr(sel, n) for n in names}
        try:
            for n in names:
                setattr(sel, n, frozenset())
            return run(body)
        finally:
            for n, value in saved.items():
                setattr(sel, n, value)
    return tags_only, ""


def page_path(name: str, suffix: str) -> Path:
    """tests/fixtures/pages/NAME.SUFFIX, or the held-out copy of it."""
    path = PAGES / f"{name}{suffix}"
    return path if path.exists() else HELD_OUT_DIR / f"{name}{suffix}"


def held_out(name: str) -> bool:
    return not (PAGES / f"{name}.expected.txt").exists()


def run_extractor(name: str, pages: list[str], repeat: int) -> dict[str, object]:
    """Outputs (page and noise variant) and median ms per page of one extractor, as JSON-able data."""
    extract, why = load(name)
    if extract is None:
        return {"skipped": why}
    results: dict[str, object] = {}
    for page in pages:
        body = page_path(page, ".html").read_bytes()
        noise = page_path(page, ".noise.html").read_bytes()
        text = extract(body)                     # warm-up: lazy imports and caches are not the page's cost
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            extract(body)
            times.append((time.perf_counter() - start) * 1000)
        results[page] = {"text": text, "noise": extract(noise), "ms": statistics.median(times)}
    return {"pages": results}


def extractor_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} ({', '.join(REQUIREMENTS)}) ...", file=sys.stderr)
        venv.create(path, with_pip=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "-U", "pip"], check=True)
        subprocess.run([*pip, *REQUIREMENTS], check=True)
    return python


def run_in_venv(python: Path, name: str, pages: list[str], repeat: int) -> dict[str, object]:
    cmd = [str(python), __file__, "--worker", name, "--repeat", str(repeat), *pages]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


# ------------------------------------------------------------------------------------------ scoring


def words(text: str) -> Counter[str]:
    return Counter(WORD.findall(text.casefold()))


def line_words(line: str) -> tuple[str, ...]:
    return tuple(WORD.findall(line.casefold()))


@dataclass(frozen=True)
class Score:
    gold_words: int
    precision: float
    recall: float
    headings: int
    headings_found: int
    headings_marked: int
    stable: bool
    ms: float

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def score(gold: str, text: str, noise: str, ms: float) -> Score:
    g, o = words(gold), words(text)
    common = sum((g & o).values())
    heads = Counter(line_words(line) for line in gold.splitlines() if line.startswith("#"))
    lines = Counter(line_words(line) for line in text.splitlines())
    marked = Counter(line_words(line) for line in text.splitlines() if line.startswith("#"))
    return Score(
        gold_words=sum(g.values()),
        precision=common / sum(o.values()) if o else 0.0,
        recall=common / sum(g.values()) if g else 0.0,
        headings=sum(heads.values()),
        headings_found=sum((heads & lines).values()),
        headings_marked=sum((heads & marked).values()),
        stable=text == noise,
        ms=ms,
    )


# ------------------------------------------------------------------------------------------ report


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    def cell(i: int, text: str) -> str:
        return text.ljust(widths[i]) if i < 2 else text.rjust(widths[i])   # names left, numbers right
    lines = ["  ".join(cell(i, c) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(pages: list[str], golds: dict[str, str], outputs: dict[str, dict[str, object]]) -> str:
    header = ["page", "extractor", "words", "precision", "recall", "F1", "headings", "as #", "stable", "ms"]
    rows = [header]
    totals: dict[str, list[Score]] = {}
    for page in pages:
        for name in EXTRACTORS:
            data = outputs[name]
            if "skipped" in data:
                continue
            result = data["pages"][page]  # type: ignore[index]
            s = score(golds[page], result["text"], result["noise"], result["ms"])
            totals.setdefault(name, []).append(s)
            rows.append([page, name, str(s.gold_words), f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}",
                         f"{s.headings_found}/{s.headings}", f"{s.headings_marked}/{s.headings}",
                         "yes" if s.stable else "NO", f"{s.ms:.1f}"])
    summary = [["pages", "extractor", "words", "precision", "recall", "F1", "headings", "as #", "stable", "ms"]]
    groups = [("tuned on", lambda p: not held_out(p)), ("held out", held_out), ("all", lambda p: True)]
    for label, member in groups:
        chosen = [p for p in pages if member(p)]
        if not chosen:
            continue
        for name, scores in totals.items():
            picked = [s for p, s in zip(pages, scores, strict=True) if member(p)]
            summary.append([f"{label} ({len(chosen)})", name, *summarise(picked)])
    notes = [f"{name}: skipped ({data['skipped']})" for name, data in outputs.items() if "skipped" in data]
    return "\n\n".join([table(rows), table(summary), *notes])


def summarise(scores: list[Score]) -> list[str]:
    """Micro averages over pages: every gold word counts once, whichever page it is on."""
    gold = sum(s.gold_words for s in scores)
    found = sum(s.recall * s.gold_words for s in scores)
    out = sum(s.recall * s.gold_words / s.precision for s in scores if s.precision)
    precision, recall = (found / out if out else 0.0), found / gold
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    heads = sum(s.headings for s in scores)
    return [str(gold), f"{precision:.3f}", f"{recall:.3f}", f"{f1:.3f}",
            f"{sum(s.headings_found for s in scores)}/{heads}", f"{sum(s.headings_marked for s in scores)}/{heads}",
            f"{sum(s.stable for s in scores)}/{len(scores)}", f"{statistics.median(s.ms for s in scores):.1f}"]


def show(page: str, gold: str, outputs: dict[str, dict[str, object]]) -> str:
    parts = []
    for name in EXTRACTORS:
        data = outputs[name]
        if "skipped" in data:
            continue
        result = data["pages"][page]  # type: ignore[index]
        for label, text in (("page", result["text"]), ("noise", result["noise"])):
            diff = difflib.unified_diff(gold.splitlines(), text.splitlines(), "gold", f"{name} ({label})",
                                        lineterm="", n=0)
            parts.append("\n".join(diff) or f"--- gold\n+++ {name} ({label})\n(identical)")
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per page (median)")
    parser.add_argument("--show", metavar="PAGE", help="print each extractor's output for PAGE against the gold")
    parser.add_argument("--venv", type=Path, default=VENV, help="environment with trafilatura and readability")
    parser.add_argument("--worker", choices=EXTRACTORS, help=argparse.SUPPRESS)
    parser.add_argument("pages", nargs="*", help="page names (default: every page in tests/fixtures/pages)")
    args = parser.parse_args()
    pages = args.pages or [p.name.removesuffix(".expected.txt") for d in (PAGES, HELD_OUT_DIR)
                           for p in sorted(d.glob("*.expected.txt"))]
    if args.worker:
        print(json.dumps(run_extractor(args.worker, pages, args.repeat)))
        return
    python = extractor_venv(args.venv)
    outputs = {name: run_extractor(name, pages, args.repeat) for name in ("default", "default-tags")}
    for name in THIRD_PARTY:
        outputs[name] = run_in_venv(python, name, pages, args.repeat)
    golds = {p: page_path(p, ".expected.txt").read_text().rstrip("\n") for p in pages}
    if args.show:
        print(show(args.show, golds[args.show], outputs))
        return
    print(report(pages, golds, outputs))


if __name__ == "__main__":
    main()
