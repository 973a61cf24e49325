"""Canonicalisation (monitor.normalize) per item: CPU time, and a dump that pins every byte it gives.

    .venv/bin/python bench/normalize_bench.py [--before DIR] [--repeat 5] [--rounds 3] [--no-dump]
    .venv/bin/python bench/normalize_bench.py --dump FILE [--code DIR]

Items: the bench farm's (bench/farm.py, 20 items of 3-11 KB HTML per feed, through monitor.parse as a
cycle reads them) and the replay corpus's (tests/fixtures/corpus: the seed feed and the 60 steps). The
table gives CPU time (process_time) per item of ``normalize_item`` and of its parts: the lxml parse, the
block walk of the parsed tree, and ``render``; the best of the repeats and rounds (the machine is shared:
the least disturbed pass is the one to compare).

``--before DIR`` times the ``monitor`` package of another checkout beside this one's, in the same process
and in turns, and prints both columns; then each checkout writes its dump (in a child process) and the
two sha256 are compared. A different dump is a false change for every user of the changed code:
canonical text feeds the hashes.

The dump (``--dump``) holds, for every item of every feed fixture (tests/fixtures/*.xml and the corpus),
of the farm, of the page fixtures, of the case tables and of 3,000 seeded tag-soup documents
(tests/tag_soup.py): the canonical text, title, hashes and blocks (kind, level, heading path), read
plainly, with ``links: true`` and a base URL, and with an ignore pattern.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.farm import FarmContent  # noqa: E402
from tests.tag_soup import soup  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
CASES = ROOT / "tests" / "cases"
BASE = "https://example.org/feed/"
IGNORE = re.compile(r"(?i)\b(the|kubernetes)\b")
SOUP_SEEDS = 3000


def feed_bodies(farm_feeds: int) -> dict[str, list[tuple[str, bytes]]]:
    """Feed bodies by set: the farm's, and the fixtures' (the corpus steps and seed included)."""
    farm = FarmContent(max(farm_feeds, 1), 20)
    fixtures = [*sorted(FIXTURES.glob("*.xml")), FIXTURES / "corpus" / "seed-feed.xml"]
    steps = sorted((FIXTURES / "corpus" / "k8s-community").glob("step_*.xml"))
    return {"farm": [(f"farm/{i}", farm.body(i)[0]) for i in range(farm_feeds)],
            "corpus": [(p.name, p.read_bytes()) for p in [fixtures[-1], *steps]],
            "fixtures": [(p.name, p.read_bytes()) for p in fixtures[:-1]]}


def parsed(bodies: list[tuple[str, bytes]]) -> list[tuple[str, Any]]:
    from monitor.models import FetchResult, Validators
    from monitor.parse import parse

    out = []
    for name, body in bodies:
        feed = parse(name, FetchResult(BASE, 200, body, None, Validators()))
        out += [(f"{name}#{n}", item) for n, item in enumerate(feed.items)]
    return out


# ------------------------------------------------------------------------------------------ the dump


def dump_lines(farm_feeds: int) -> Iterator[str]:
    """One JSON line per (input, reading): everything normalisation returns."""
    from monitor.models import ParsedItem

    bodies = feed_bodies(farm_feeds)
    items = [x for name in ("fixtures", "corpus", "farm") for x in parsed(bodies[name])]
    items += [(f"page/{n}", ParsedItem(None, None, "", h, b"")) for n, h in _pages()]
    items += [(f"case/{n}", ParsedItem(None, None, t, h, b"", title_is_html=True)) for n, t, h in _cases()]
    items += [(f"soup/{s}", ParsedItem(None, None, soup(s + 1), soup(s), b"", title_is_html=True))
              for s in range(SOUP_SEEDS)]
    items += [(f"plain/{s}", ParsedItem(None, None, soup(s), soup(s), b"", content_is_html=False))
              for s in range(0, SOUP_SEEDS, 10)]
    for name, item in items:
        for reading, kw in (("plain", {}), ("links", {"links": True, "base": BASE}), ("ignore", {"ignore": [IGNORE]})):
            yield json.dumps([name, reading, *_record(item, kw)], ensure_ascii=False)
    for s in range(0, SOUP_SEEDS, 3):
        yield json.dumps([f"tree/{s}", "element", _tree_blocks(soup(s), namespaced=s % 2 == 1)], ensure_ascii=False)


def _record(item: Any, kw: dict[str, Any]) -> list[Any]:
    from monitor.normalize import html_blocks, normalize_item, text_blocks

    out = normalize_item(item, **kw)
    links = {k: v for k, v in kw.items() if k != "ignore"}
    blocks = html_blocks(item.content, **links) if item.content_is_html else text_blocks(item.content)
    return [out.title, out.link, out.text, out.text_hash.hex(), out.state_hash.hex(),
            [[b.kind.value, b.text, b.level, list(b.path)] for b in blocks]]


def _tree_blocks(html: str, *, namespaced: bool) -> list[Any]:
    """The blocks of an element parsed elsewhere: lxml.html keeps comments and processing instructions,
    and XHTML tags carry a namespace."""
    import lxml.etree
    import lxml.html

    from monitor.normalize import html_blocks

    try:
        root = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return []
    if namespaced:
        for el in root.iter(tag=lxml.etree.Element):
            if el.tag.isalnum():
                el.tag = "{http://www.w3.org/1999/xhtml}" + el.tag
    try:
        blocks = html_blocks(root, links=True)
    except ValueError as exc:   # a comment past MAX_DEPTH: flat reading hands it to iterwalk, which refuses it
        return [f"{type(exc).__name__}: {exc}"]
    return [[b.kind.value, b.text, b.level, list(b.path)] for b in blocks]


def _pages() -> Iterator[tuple[str, str]]:
    from monitor.select import parse_html, select

    for path in sorted((FIXTURES / "pages").glob("*.html")):
        root = parse_html(path.read_bytes(), "text/html; charset=utf-8")
        if root is not None:
            yield path.name, select(root).html


def _cases() -> Iterator[tuple[str, str, str]]:
    for table in ("normalize", "visible_text"):
        for case in yaml.safe_load((CASES / f"{table}.yaml").read_text()):
            yield f"{table}/{case['name']}", case["html"], case["html"]


def write_dump(path: Path, farm_feeds: int) -> str:
    digest = hashlib.sha256()
    with path.open("w", encoding="utf-8") as f:
        for line in dump_lines(farm_feeds):
            f.write(line + "\n")
            digest.update(line.encode() + b"\n")
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ timing


def best_us(call: Callable[[], object], count: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        call()
        times.append(time.process_time() - started)
    return min(times) * 1e6 / max(count, 1)


def load_monitor(code: Path) -> dict[str, ModuleType]:
    """The monitor modules of a checkout, imported beside the ones already loaded (each module keeps the
    functions it imported from its own checkout), so two checkouts can be timed in turn in one process."""
    saved = {k: m for k, m in sys.modules.items() if k.split(".")[0] == "monitor"}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(code.resolve()))
    try:
        importlib.import_module("monitor.normalize")
        return {k: m for k, m in sys.modules.items() if k.split(".")[0] == "monitor"}
    finally:
        sys.path.pop(0)
        for k in [k for k in sys.modules if k.split(".")[0] == "monitor"]:
            del sys.modules[k]
        sys.modules.update(saved)


def steps(modules: dict[str, ModuleType], items: list[Any]) -> dict[str, Callable[[], object]]:
    """The timed steps over `items` with one checkout's functions."""
    normalize, render = modules["monitor.normalize"], modules["monitor.canonical"].render
    html = [i.content for i in items]
    roots = [normalize.parse_html(h) for h in html]
    blocks = [normalize.html_blocks(r) for r in roots]
    return {"normalize_item": lambda: [normalize.normalize_item(i, base=BASE) for i in items],
            "  parse_html": lambda: [normalize.parse_html(h) for h in html],
            "  walk (html_blocks of a tree)": lambda: [normalize.html_blocks(r) for r in roots],
            "  render": lambda: [render(b) for b in blocks]}


def measure(checkouts: dict[str, Path], args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    """checkout -> set -> step -> µs per item; the checkouts take turns, each step keeps its best round."""
    modules = {label: load_monitor(code) for label, code in checkouts.items()}
    bodies = feed_bodies(args.farm_feeds)
    sets = {name: [item for _, item in parsed(bodies[name])] for name in ("farm", "corpus")}
    timed = {label: {name: steps(modules[label], items) for name, items in sets.items()} for label in checkouts}
    out: dict[str, dict[str, dict[str, float]]] = {label: {name: {"items": len(items)} for name, items in sets.items()}
                                                   for label in checkouts}
    for _ in range(args.rounds):
        for label in checkouts:
            for name, calls in timed[label].items():
                for step, call in calls.items():
                    us = best_us(call, len(sets[name]), args.repeat)
                    out[label][name][step] = min(us, out[label][name].get(step, us))
    return out


def _dump_in_child(code: Path, args: argparse.Namespace, dump: Path) -> str:
    """The dump of a checkout's monitor package (and all it imports), written by a child process."""
    cmd = [sys.executable, __file__, "--code", str(code), "--farm-feeds", str(args.farm_feeds), "--dump", str(dump)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another checkout to compare with (its monitor package)")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout measured (default: this one)")
    parser.add_argument("--dump", type=Path, help="write the dump here (and print its sha256)")
    parser.add_argument("--farm-feeds", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="turns of each checkout")
    parser.add_argument("--no-dump", action="store_true", help="time only")
    args = parser.parse_args(argv)
    if args.dump and not args.before:
        sys.path.insert(0, str(args.code.resolve()))
        print(f"{write_dump(args.dump, args.farm_feeds)}  {args.dump}")
        return 0
    checkouts = {"before": args.before, "now": args.code} if args.before else {"now": args.code}
    _print_table(measure(checkouts, args))
    print("\n" + "\n".join(f"{label}: {code.resolve()}" for label, code in checkouts.items()))
    if args.no_dump:
        return 0
    dump = args.dump or Path("/tmp/normalize_bench.dump")
    digests = {label: _dump_in_child(code, args, dump.with_suffix(f".{label}")) for label, code in checkouts.items()}
    same = len(set(digests.values())) == 1
    print("\ndump sha256: " + ", ".join(f"{label} {d}" for label, d in digests.items())
          + (": identical" if same and args.before else ": DIFFERENT" if not same else ""))
    return 0 if same else 1


def _print_table(times: dict[str, dict[str, dict[str, float]]]) -> None:
    labels = list(times)
    print(f"{'set':8} {'step':32} {'items':>6} " + " ".join(f"{label + ' µs':>10}" for label in labels)
          + ("   ratio" if len(labels) == 2 else ""))
    for name, first in times[labels[0]].items():
        for step in first:
            if step == "items":
                continue
            row = [times[label][name][step] for label in labels]
            print(f"{name:8} {step:32} {int(first['items']):6} " + " ".join(f"{us:10.1f}" for us in row)
                  + (f"   {row[1] / row[0]:5.2f}" if len(row) == 2 else ""))


if __name__ == "__main__":
    sys.exit(main())
