"""Which HTML parser should normalisation read item HTML with? Speed and correctness of the candidates.

Every candidate builds an lxml tree that feedwatch's own block walker (monitor.normalize) then reads, so
only the parser differs. Measured:

- the shapes of issue 13/14 that lose visible text (an unclosed <embed>, MathML, text in a stray <tr>,
  300 and 5,000 nested <div>s with a paragraph after them);
- the cases of tests/cases/normalize.yaml that still give their expected text;
- the canonical texts of every item of the replay corpus (tests/fixtures/corpus) and of the page fixtures
  (tests/fixtures/pages) identical to today's (a different text would be a false change on upgrade);
- time per document (parse + walk), median of 5 passes over the corpus items and over the pages.

Candidates that are not installed are listed as such. html5-parser needs an lxml built against its own
libxml2 (the lxml wheels bundle another), so run this file in an environment with `lxml==4.9.1` to
measure it: `python bench/html_parsers.py` from the repository root.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lxml.etree
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import normalize  # noqa: E402
from monitor.canonical import render  # noqa: E402
from monitor.models import FetchResult, Validators  # noqa: E402
from monitor.parse import parse  # noqa: E402

Parser = Callable[[str], Any]


def candidates() -> dict[str, Parser]:
    out: dict[str, Parser] = {}
    plain = lxml.etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, recover=True)
    out["lxml HTMLParser (before)"] = lambda h: lxml.etree.fromstring(h, parser=plain)
    out["lxml HTMLParser huge_tree (now)"] = normalize.parse_html
    try:
        import html5_parser

        out["html5-parser (gumbo)"] = lambda h: html5_parser.parse(h, treebuilder="lxml", namespace_elements=False,
                                                                  keep_doctype=False, maybe_xhtml=False)
    except (ImportError, RuntimeError) as exc:
        print(f"html5-parser: not measured here ({str(exc).splitlines()[0][:120]})")
    try:
        from selectolax.lexbor import LexborHTMLParser

        out["selectolax (lexbor) -> lxml"] = lambda h: _lexbor_to_lxml(LexborHTMLParser(h).root)
    except ImportError:
        print("selectolax: not installed")
    try:
        import html5lib

        out["html5lib -> lxml"] = lambda h: html5lib.parse(h, treebuilder="lxml", namespaceHTMLElements=False).getroot()
    except ImportError:
        print("html5lib: not installed")
    return out


def _lexbor_to_lxml(node: Any) -> Any:
    """A lexbor tree as lxml elements (iterative: documents may be deeply nested)."""
    root = lxml.etree.Element("html")
    stack = [(node, root)]
    while stack:
        src, dst = stack.pop()
        last = None
        for child in src.iter(include_text=True):
            if child.tag == "-text":
                if last is None:
                    dst.text = (dst.text or "") + child.text_content
                else:
                    last.tail = (last.tail or "") + child.text_content
            elif child.tag.startswith(("-", "!")):
                continue
            else:
                last = lxml.etree.SubElement(dst, child.tag.split(":")[-1].replace("-", "_") or "x")
                stack.append((child, last))
    return root


def text_of(parser: Parser, html: str) -> str:
    if not html.strip():
        return ""
    if parser is normalize.parse_html:
        return render(normalize.html_blocks(html))     # today's entry point, with its too-deep fallback
    root = parser(html)
    if root is None:
        return ""
    return render(normalize.html_blocks(root))


SHAPES = {
    "unclosed <embed>": ("<p>a <embed src=x.swf> after the embed</p><p>later</p>", ["after the embed", "later"]),
    "MathML": ("<p>Sum: <math><mi>a</mi><mo>+</mo><mi>b</mi></math>.</p>", ["a", "+", "b"]),
    "stray <tr>": ("<tr>stray row text</tr><p>next</p>", ["stray row text"]),
    "300 nested divs": ("<p>a</p>" + "<div>" * 300 + "deep" + "</div>" * 300 + "<p>b</p>", ["deep", "b"]),
    "5,000 nested divs": ("<p>a</p>" + "<div>" * 5000 + "deep" + "</div>" * 5000 + "<p>b</p>", ["deep", "b"]),
}


def corpus_items() -> list[str]:
    bodies: dict[str, None] = {}
    for path in sorted((ROOT / "tests/fixtures/corpus/k8s-community").glob("step_*.xml")):
        feed = parse("bench", FetchResult("https://example.org/", 200, path.read_bytes(), None, Validators()))
        for item in feed.items:
            bodies[item.content] = None
    return list(bodies)


def timed(parser: Parser, docs: list[str]) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for d in docs:
            text_of(parser, d)
        runs.append((time.perf_counter() - started) / len(docs) * 1000)
    return statistics.median(runs)


def main() -> None:
    cases = yaml.safe_load((ROOT / "tests/cases/normalize.yaml").read_text())
    items = corpus_items()
    pages = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests/fixtures/pages").glob("*.html"))]
    now = normalize.parse_html
    reference = {d: text_of(now, d) for d in items + pages}
    print(f"{len(items)} distinct corpus item bodies, {len(pages)} pages, {len(cases)} normalize.yaml cases\n")
    print("| parser | " + " | ".join(SHAPES) + " | normalize.yaml | corpus same | pages same | ms/item | ms/page |")
    print("|---" * (len(SHAPES) + 6) + "|")
    for name, parser in candidates().items():
        shapes = []
        for html, wanted in SHAPES.values():
            try:
                text = text_of(parser, html)
                shapes.append("kept" if all(w in text for w in wanted) else "LOST")
            except RecursionError:
                shapes.append("RecursionError")
        table = sum(1 for c in cases if not c.get("links") and text_of(parser, c["html"]) == c["text"])
        tabled = sum(1 for c in cases if not c.get("links"))
        same_items = sum(1 for d in items if text_of(parser, d) == reference[d])
        same_pages = sum(1 for d in pages if text_of(parser, d) == reference[d])
        print(f"| {name} | " + " | ".join(shapes) + f" | {table}/{tabled} | {same_items}/{len(items)} | "
              f"{same_pages}/{len(pages)} | {timed(parser, items):.3f} | {timed(parser, pages):.2f} |")


if __name__ == "__main__":
    main()
