"""Seeded tag soup: HTML documents in every shape normalisation reads, for pinning canonical text.

The replay corpus is well-formed Markdown output; real feeds also send unclosed and stray tags, text
directly in tables, hidden elements inside list items, headings holding lists, entities and invisible
characters at block edges, and markup nested past the walker's recursion budget. ``soup(seed)`` is the
same string for the same seed (``random.Random`` is stable across Python versions for the calls used
here), so the canonical texts of a fixed range of seeds can be pinned (tests/test_canonical_stability.py)
and compared before and after a change to monitor.normalize (bench/normalize_bench.py --dump).
"""

from __future__ import annotations

import random

STRUCTURE = ["p", "div", "section", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl",
             "dt", "dd", "table", "tbody", "tr", "td", "th", "caption", "pre", "hr", "figure", "figcaption",
             "details", "summary", "article", "header", "footer", "nav", "center", "hgroup"]
INLINE = ["span", "a", "img", "em", "strong", "b", "i", "code", "sub", "sup", "small", "abbr", "font", "label",
          "embed", "source", "track", "wbr", "math", "mi", "mo", "q", "kbd", "u", "ins", "del", "time"]
HIDDEN = ["script", "style", "svg", "title", "textarea", "select", "option", "noscript", "iframe", "object",
          "template", "button", "annotation", "canvas", "video", "head", "meta"]
WORDS = ["word", "Kubernetes", "café", "naïve", "e\u0301", "A\u030a", "日本語", "x", "1", "&amp;", "&lt;tag&gt;",
         "&rsquo;", "&nbsp;", "&#x200b;", "&shy;", "#", "# hash", "- dash", "-", "| bar", "```", "\\", "\\back",
         "\u00a0", "\u200b", "\u00ad", "\ufeff", "\u2060", "\u3000", "\u2028", "\u0085", "\x0b", "\x0c", "\x1c",
         "\x00", "\x01", "\x7f", "\ufffe", "😀", "𝔘𝔫𝔦", "Straße ß",
         "tab\there", "line\nbreak", "cr\rlf\r\n", "  spaced  ", "*", "> quote", "1. one", "[x]", "<", ">"]
SPACE = ["", "", " ", "\n", "\n  ", "\t", "  \n\n  ", "\u00a0", "\r\n"]
TARGETS = ["http://example.org/a", "/relative/path", "../up", "#fragment", "javascript:void(0)", "data:x",
           "  spaced.html  ", "", "mailto:a@b.c", "?q=1"]
ODDITIES = ["<!-- comment -->", "<?pi x?>", "<![CDATA[cdata]]>", "</p>", "</li>", "</td>", "<br>", "<br/>",
            "</div>", "<p>", "<li>", "<td>", "<tr>", "&", "&bogus;", "<unknown-el>x</unknown-el>", "<o:p>o</o:p>",
            "<meta charset='windows-1252'>", "<meta http-equiv='Content-Type' content='text/html; charset=koi8-r'>"]


def soup(seed: int) -> str:
    """One document of 1-12 top-level nodes; one in ten wraps its body in nesting past 200 levels (one in
    a hundred past libxml2's 2,048)."""
    rng = random.Random(seed)
    body = "".join(_node(rng, 0) for _ in range(rng.randint(1, 12)))
    if rng.random() < 0.1:
        tag = rng.choice(["div", "span", "li", "b", "blockquote"])
        levels = rng.randint(190, 260) if rng.random() < 0.9 else rng.randint(2040, 2300)
        body = f"<{tag}>{rng.choice(WORDS)}" * levels + body + f"</{tag}>" * rng.randint(0, levels)
    prefix = rng.choice(["", "", "", "<?xml version='1.0'?>", "<html><body>", "<!DOCTYPE html>", " \n", "\ufeff",
                         "<?xml version='1.0' encoding='iso-8859-1'?>"])
    return prefix + body


def _node(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 6 or roll < 0.3:
        return rng.choice(SPACE) + " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 4))) + rng.choice(SPACE)
    if roll < 0.36:
        return rng.choice(ODDITIES)
    if roll < 0.42:
        hidden = rng.choice(HIDDEN)
        return f"<{hidden}>{rng.choice(WORDS)}</{hidden if rng.random() < 0.9 else rng.choice(HIDDEN)}>"
    tag = rng.choice(STRUCTURE if roll < 0.7 else INLINE)
    if rng.random() < 0.1:
        tag = tag.upper()
    attrs = ""
    if tag.lower() in ("a", "img") or rng.random() < 0.05:
        attrs = f' href="{rng.choice(TARGETS)}" src="{rng.choice(TARGETS)}"'
    inner = "".join(_node(rng, depth + 1) for _ in range(rng.randint(0, 4)))
    close = f"</{tag}>" if rng.random() < 0.85 else ""
    return f"<{tag}{attrs}>{inner}{close}{rng.choice(SPACE)}"
