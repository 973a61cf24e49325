"""A sitemap (sitemaps.org 0.9) -> the page URLs it lists. Pure functions.

A ``<urlset>`` lists pages (``<loc>``, optional ``<lastmod>``); a ``<sitemapindex>`` lists further
sitemaps. Either may be gzip-compressed (``sitemap.xml.gz``), which is undone here under the same size
cap as the fetch. The XML parser resolves no entities and loads nothing from the network, so an entity
bomb or an external entity in a sitemap is inert.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import lxml.etree

from monitor.errors import ParseError

_PARSER = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                               remove_comments=True, remove_pis=True)
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    url: str
    lastmod: str | None = None


@dataclass(frozen=True, slots=True)
class Sitemap:
    """A parsed sitemap: page entries (``urlset``) or child sitemaps (``sitemapindex``)."""

    pages: tuple[SitemapEntry, ...] = ()
    children: tuple[str, ...] = ()


def parse(name: str, body: bytes, *, max_bytes: int) -> Sitemap:
    """Parse one sitemap or sitemap index; raises ParseError with a one-line message."""
    body = gunzip(name, body, max_bytes=max_bytes) if body[:2] == GZIP_MAGIC else body
    if not body.strip():
        raise ParseError(name, "empty sitemap")
    try:
        root = lxml.etree.fromstring(body.lstrip(), parser=_PARSER)
    except lxml.etree.XMLSyntaxError as exc:
        raise ParseError(name, f"malformed sitemap: {exc.msg}") from None
    kind = _local(root.tag)
    if kind == "urlset":
        entries = []
        for url in root:
            if _local(url.tag) == "url" and (loc := _child_text(url, "loc")):
                entries.append(SitemapEntry(loc, _child_text(url, "lastmod")))
        return Sitemap(pages=tuple(entries))
    if kind == "sitemapindex":
        return Sitemap(children=tuple(loc for s in root if _local(s.tag) == "sitemap"
                                      if (loc := _child_text(s, "loc"))))
    raise ParseError(name, f"not a sitemap (the document is <{kind}>, expected <urlset> or <sitemapindex>)")


def gunzip(name: str, body: bytes, *, max_bytes: int) -> bytes:
    """Decompress a gzip body, stopping at `max_bytes` of output (a gzip bomb stops early)."""
    decoder = zlib.decompressobj(31)
    try:
        out = decoder.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise ParseError(name, f"corrupt gzip sitemap: {exc}") from None
    if len(out) > max_bytes:
        raise ParseError(name, f"sitemap larger than {max_bytes} bytes once decompressed")
    return out


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child_text(el: lxml.etree._Element, name: str) -> str | None:
    for child in el:
        if _local(child.tag) == name:
            text = (child.text or "").strip()
            return text or None
    return None
