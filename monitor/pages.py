"""Sources whose documents are web pages (DESIGN §2b): what to fetch, and what each page gave.

Three kinds of source read pages:

- a feed with ``follow: true``: each item's document is the page its link points to (the item keeps its
  guid and title);
- ``kind: page``: the source URL is one page, one document (its id the URL, its title the page's);
- ``kind: sitemap``: every ``<loc>`` of a sitemap (or of the sitemaps of a sitemap index) is a document,
  narrowed by ``include`` / ``exclude_urls`` and capped by ``max_documents``.

A page costs as little as the server allows: a sitemap ``<lastmod>`` that has not moved costs no request
at all, a conditional GET with the page's stored validators costs a 304, and a body identical to the last
one is not parsed. In each of those cases the page's stored canonical text stands for it. A page that
fails keeps its document as it was (its error is recorded on the page, named by URL, and the other pages
go on); it never turns into a removal or a change.

This module does the I/O of pages through the Fetcher it is given; it never touches the database. The
orchestrator (monitor.poll) hands it the stored page states and stores what it returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import unescape
from urllib.parse import urljoin, urlsplit, urlunsplit

import msgspec
from msgspec.structs import replace

from monitor import sitemap
from monitor.config import FeedSettings
from monitor.errors import FeedError, ParseError
from monitor.fetch import Fetcher
from monitor.humanize import first_line
from monitor.models import FetchResult, Item, PageState, ParsedItem, Validators
from monitor.normalize import collapse, normalize_item, state_hash, title_text
from monitor.select import Page, PageTooDeep, SelectorInvalid, is_utf16, parse_html, select
from monitor.urls import is_local, mask_credentials, server_of

MAX_SITEMAPS = 50           # child sitemaps read from one sitemap index
_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.I | re.S)
log = logging.getLogger("feedwatch.pages")
HTML_TYPES = ("text/html", "application/xhtml+xml")


class Entry(msgspec.Struct, frozen=True):
    """One document of a source before its page is read: the item as the source lists it and the page
    whose content is the document (None: the item's own content is the document)."""

    item: ParsedItem
    page: str | None = None
    lastmod: str | None = None
    title_from_page: bool = False   # sitemap URLs have no title of their own


class PageRead(msgspec.Struct, frozen=True):
    """What reading one entry's page gave.

    ``item`` carries the selected HTML when the page was read now; ``stored`` is set instead when the
    page's stored canonical text stands for it (not modified, lastmod unchanged, identical body, or a
    failure after an earlier success). ``state`` is the page state to keep; ``dirty`` says it differs
    from the stored one. ``error`` is the one-line error of a failed page."""

    entry: Entry
    state: PageState
    item: ParsedItem | None = None
    base: str | None = None
    stored: bytes | None = None     # text hash of the stored canonical text that stands for the page
    error: str | None = None
    dirty: bool = False
    retry_after: float | None = None    # the page's server asked to wait (429/503 with Retry-After)


@dataclass
class SourceEntries:
    entries: list[Entry]
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- sources


def page_item(feed: FeedSettings, fetched: FetchResult) -> ParsedItem:
    """`kind: page`: the fetched body is the document. Raises ParseError when it is not a usable page."""
    page = read_page(feed, fetched)
    return ParsedItem(guid=None, link=feed.url, title=page.title, content=page.html,
                      raw=_raw(feed.url, page), content_is_html=True)


def follow_entries(items: Sequence[ParsedItem], base: str) -> SourceEntries:
    """`follow: true`: each item's page is its link, resolved against the feed's URL (items without a
    link feedwatch may follow keep their own content)."""
    entries = []
    for item in items:
        link = page_url(item.link, base)
        entries.append(Entry(replace(item, link=link), link) if link else Entry(item))
    return SourceEntries(entries)


async def sitemap_entries(feed: FeedSettings, fetched: FetchResult, fetcher: Fetcher, *,
                          known: frozenset[str] = frozenset()) -> tuple[SourceEntries, bytes]:
    """`kind: sitemap`: the pages the sitemap lists, and the hash of every sitemap body read (an index's
    sitemaps included, nested indexes too), which says whether anything in the sitemap moved.

    When `max_documents` cuts the list, the pages already watched (`known`) keep their places, so a
    reordered sitemap never turns the cap's choice into removals."""
    digest = hashlib.sha256()
    warnings: list[str] = []
    pages: list[sitemap.SitemapEntry] = []
    queue, seen = [(fetched.url, fetched.body)], {fetched.url}
    while queue:
        url, body = queue.pop(0)
        digest.update(body)
        try:
            parsed = sitemap.parse(feed.name, body, max_bytes=feed.max_bytes)
        except ParseError as err:   # an index's sitemap is named, as when it cannot be fetched
            if url == fetched.url:
                raise
            raise ParseError(feed.name, f"sitemap {mask_credentials(url)}: {err.detail}") from None
        pages.extend(sitemap.SitemapEntry(u, p.lastmod) for p in parsed.pages if (u := page_url(p.url, url, feed.url)))
        for child in parsed.children:
            child_url = page_url(child, url, feed.url)
            if child_url is None or child_url in seen:
                continue
            if len(seen) > MAX_SITEMAPS:
                warnings.append(f"the sitemap index lists more than {MAX_SITEMAPS} sitemaps; the first "
                                f"{MAX_SITEMAPS} are read")
                break
            seen.add(child_url)
            queue.append((child_url, await _fetch_child(feed, fetcher, child_url)))
    wanted = [p for p in _unique(pages) if _wanted(feed, p.url)]
    if len(wanted) > feed.max_documents:
        warnings.append(f"the sitemap lists {len(wanted)} pages; max_documents is {feed.max_documents}, "
                        f"so {feed.max_documents} are watched (those watched already first, then in sitemap order)")
        ranked = sorted(wanted, key=lambda p: p.url not in known)      # stable: known pages first
        keep = {p.url for p in ranked[:feed.max_documents]}
        wanted = [p for p in wanted if p.url in keep]
    entries = [Entry(ParsedItem(guid=None, link=p.url, title="", content="", raw=b""), p.url, p.lastmod,
                     title_from_page=True) for p in wanted]
    return SourceEntries(entries, warnings), digest.digest()


def stored_entries(feed: FeedSettings, documents: Sequence[tuple[str | None, str | None, str]],
                   states: dict[str, PageState]) -> SourceEntries:
    """When the source itself has not changed (304, identical body): its present documents, as they were
    listed last time, so their pages are still checked. `documents` are (guid, link, title)."""
    entries = []
    for guid, link, title in documents:
        if not link or page_url(link, feed.url) != link:
            continue
        state = states.get(link)
        entries.append(Entry(ParsedItem(guid=guid, link=link, title=title, content="", raw=b""), link,
                             state.lastmod if state else None, title_from_page=feed.kind == "sitemap"))
    return SourceEntries(entries)


async def _fetch_child(feed: FeedSettings, fetcher: Fetcher, url: str) -> bytes:
    try:
        fetched = await fetcher.fetch(feed.name, url, None, timeout=feed.timeout, max_bytes=feed.max_bytes)
    except FeedError as err:
        raise type(err)(feed.name, f"sitemap {mask_credentials(url)}: {err.detail}", retry_after=err.retry_after,
                        http_status=err.http_status) from None
    return fetched.body


def _unique(pages: Sequence[sitemap.SitemapEntry]) -> list[sitemap.SitemapEntry]:
    seen: set[str] = set()
    out = []
    for p in pages:
        if p.url not in seen:
            seen.add(p.url)
            out.append(p)
    return out


def _wanted(feed: FeedSettings, url: str) -> bool:
    if feed.include and not any(p.search(url) for p in feed.include):
        return False
    return not any(p.search(url) for p in feed.exclude_urls)


def page_url(url: str | None, base: str, source: str | None = None) -> str | None:
    """The page a link or sitemap <loc> points at, or None when feedwatch must not follow it.

    Relative URLs are resolved against `base`; the fragment is dropped (it names a place in the same
    page); scheme and host are lower-cased. Only http(s) pages are followed: a remote feed or sitemap can
    never make feedwatch read a local file. ``file:`` pages are followed only from a source that is a
    local file itself (`source`, default `base`)."""
    if not url or not url.strip():
        return None
    try:
        parts = urlsplit(urljoin(base, url.strip()))
    except ValueError:
        return url.strip() if url.strip().lower().startswith(("http://", "https://")) else None  # fetch says why
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not is_local(source or base):
            return None
    elif scheme not in ("http", "https") or not parts.netloc:
        return None
    user, at, host = parts.netloc.rpartition("@")
    return urlunsplit((scheme, user + at + host.lower(), parts.path or ("/" if scheme != "file" else ""),
                       parts.query, ""))


# ---------------------------------------------------------------------------------------------- pages


async def read_pages(feed: FeedSettings, entries: Sequence[Entry], states: dict[str, PageState],
                     fetcher: Fetcher, *, use_validators: bool, workers: int = 8) -> PageReads:
    """Read every entry's page, `workers` at a time (the Fetcher's total and per-host limits apply too).

    A host that answers 429 or 503 with Retry-After is asked nothing more in this poll: its remaining pages
    keep their documents as they are, with an error saying why, and the host's back-off is returned."""
    reads: list[PageRead | None] = [None] * len(entries)
    backoff: dict[str, tuple[float, str]] = {}
    queue = list(enumerate(entries))
    queue.reverse()

    async def worker() -> None:
        while queue:
            index, entry = queue.pop()
            host = server_of(entry.page) if entry.page else ""
            if host in backoff:
                error = f"fetch: {feed.name}: page {mask_credentials(entry.page or '')}: not fetched, {host} " \
                        f"asked to wait (retry after {backoff[host][0]:.0f} s)"
                reads[index] = _failed(entry, states.get(entry.page or ""), None, error)
                continue
            read = await read_page_entry(feed, entry, states.get(entry.page or ""), fetcher,
                                         use_validators=use_validators)
            if read.retry_after is not None:
                backoff[host] = (read.retry_after, read.error or "")
            reads[index] = read

    await asyncio.gather(*(worker() for _ in range(min(workers, len(entries)))))
    return PageReads([r for r in reads if r is not None], backoff)


class PageReads(msgspec.Struct, frozen=True):
    reads: list[PageRead]
    backoff: dict[str, tuple[float, str]]      # host -> (Retry-After seconds, the error that asked it)


async def read_page_entry(feed: FeedSettings, entry: Entry, state: PageState | None, fetcher: Fetcher, *,
                          use_validators: bool) -> PageRead:
    if entry.page is None:
        return PageRead(entry, PageState(""), item=entry.item)
    url = entry.page
    known = state if (state is not None and use_validators and state.text_hash is not None) else None
    if known is not None and entry.lastmod is not None and entry.lastmod == known.lastmod and not known.error:
        return _unchanged(entry, known)          # the sitemap says the page has not moved: no request
    try:
        fetched = await fetcher.fetch(feed.name, url, known.validators if known else None,
                                      timeout=feed.timeout, max_bytes=feed.max_bytes)
        if fetched.not_modified and known is not None:     # a page that worked again is written: no stale error
            return _unchanged(entry, replace(known, validators=_keep(fetched.validators, known.validators)),
                              dirty=known.lastmod != entry.lastmod or known.error is not None)
        body_hash = hashlib.sha256(fetched.body).digest()
        if known is not None and body_hash == known.body_hash:
            return _unchanged(entry, replace(known, validators=fetched.validators), dirty=True)
        page = read_page(feed, fetched)
    except FeedError as err:
        failed = _failed(entry, state, known, f"{err.stage}: {feed.name}: page {mask_credentials(url)}: {err.detail}")
        if err.retry_after is not None and err.http_status in (429, 503):
            return replace(failed, retry_after=err.retry_after)
        return failed
    title = page.title if entry.title_from_page else entry.item.title
    item = replace(entry.item, title=title, content=page.html, raw=_raw(url, page, entry.item.raw),
                   content_is_html=True)
    new = PageState(url, fetched.validators, entry.lastmod, body_hash, None, page.title)
    return PageRead(entry, new, item=item, base=fetched.url, dirty=True)


def _unchanged(entry: Entry, state: PageState, *, dirty: bool = False) -> PageRead:
    state = replace(state, lastmod=entry.lastmod or state.lastmod, error=None)
    title = state.title if entry.title_from_page else entry.item.title
    return PageRead(replace(entry, item=replace(entry.item, title=title)), state, stored=state.text_hash,
                    dirty=dirty)


def _failed(entry: Entry, state: PageState | None, known: PageState | None, error: str) -> PageRead:
    """A page that failed: its document stays as it was (stored text), its error is recorded."""
    kept = state or PageState(entry.page or "")
    stored = known.text_hash if known is not None else (state.text_hash if state else None)
    title = kept.title if entry.title_from_page else entry.item.title
    return PageRead(replace(entry, item=replace(entry.item, title=title)), replace(kept, error=error),
                    stored=stored, error=error, dirty=kept.error != error)


def _keep(new: Validators, old: Validators) -> Validators:
    """A 304 may omit the validators (RFC 9110 §15.4.5 asks servers to repeat them; not all do)."""
    return Validators(new.etag or old.etag, new.last_modified or old.last_modified)


def read_page(feed: FeedSettings, fetched: FetchResult) -> Page:
    """A fetched page -> its selected document. Raises ParseError for a body that is not an HTML page."""
    media = _media_type(fetched)
    if media == "text/plain":
        text = fetched.body.decode("utf-8", "replace")
        return Page(first_line(text, 200), "<pre>" + _escape(text) + "</pre>", text=text.strip())
    if media not in HTML_TYPES and media is not None:
        raise ParseError(feed.name, f"not an HTML page (content-type {media})")
    if b"\x00" in fetched.body[:4096] and not is_utf16(fetched.body, fetched.content_type):
        raise ParseError(feed.name, "not an HTML page (binary content)")
    try:
        root = parse_html(fetched.body, fetched.content_type)
    except PageTooDeep as deep:   # no tree to select from: the whole page, read by normalize's token fallback
        html = fetched.body.decode(deep.charset or "utf-8", "replace")
        log.warning("feed=%s page nested too deeply to select its main content: the whole page is its "
                    "document", feed.name)
        title = _TITLE.search(html, 0, 1 << 16)        # in the head, before any nesting
        return Page(collapse(unescape(_TAG.sub(" ", title.group(1))))[:500] if title else "", html,
                    text=collapse(_TAG.sub(" ", html)))
    if root is None:
        raise ParseError(feed.name, "not an HTML page (nothing could be parsed)")
    try:
        page = select(root, select=feed.select, exclude=feed.exclude)
    except SelectorInvalid as exc:
        raise ParseError(feed.name, str(exc)) from None
    if not page.matched:
        raise ParseError(feed.name, f"select matched nothing on the page ({', '.join(feed.select)})")
    if not page.text:
        raise ParseError(feed.name, "nothing is left of the page after select/exclude (its document would be "
                         "empty)")
    return page


def _media_type(fetched: FetchResult) -> str | None:
    if fetched.url.startswith("file:"):
        guessed, _ = mimetypes.guess_type(fetched.url)
        return guessed or "text/html"
    if not fetched.content_type:
        return None
    return fetched.content_type.split(";", 1)[0].strip().lower()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _raw(url: str, page: Page, item_raw: bytes = b"") -> bytes:
    """What a page document keeps as its raw item: the page URL and title, the feed item it came from (if
    any) and the selected HTML, so its canonical text can be rebuilt."""
    raw: dict[str, object] = {"page": url, "title": page.title, "html": page.html}
    if item_raw:
        raw["item"] = json.loads(item_raw) if item_raw.startswith(b"{") else item_raw.decode("utf-8", "replace")
    return json.dumps(raw, ensure_ascii=False, sort_keys=True).encode()


# ---------------------------------------------------------------------------------------------- documents


class Documents(msgspec.Struct, frozen=True):
    """The items a page source contributes to a poll, the page states to store, and the links of pages
    that failed before they ever gave a text (their documents, if any, are held as they are).

    Items of pages that did not change carry their stored text's hash but not the text itself (``text``
    is empty): comparing needs only the hash, and the text is loaded only for the few that get a new
    version (see :func:`with_text`)."""

    items: list[Item]
    states: tuple[PageState, ...]
    held_links: frozenset[str]
    errors: tuple[str, ...]
    unloaded: frozenset[bytes] = frozenset()    # text hashes of items whose text is not loaded


def documents(feed: FeedSettings, reads: Sequence[PageRead], *, base: str | None) -> Documents:
    """Normalise what the pages gave into items (pure)."""
    items: list[Item] = []
    states: list[PageState] = []
    held: set[str] = set()
    unloaded: set[bytes] = set()
    for r in reads:
        if r.stored is not None:
            items.append(_stored_item(r.entry.item, r.stored))
            unloaded.add(r.stored)
        elif r.item is not None and r.error is None:
            item = normalize_item(r.item, links=feed.links, base=r.base or base, ignore=feed.ignore)
            items.append(item)
            if r.entry.page is not None:
                states.append(replace(r.state, text_hash=item.text_hash))
                continue
        elif r.entry.item.link:
            held.add(r.entry.item.link)
        if r.dirty and r.entry.page is not None:
            states.append(r.state)
    return Documents(items, tuple(states), frozenset(held), tuple(r.error for r in reads if r.error),
                     frozenset(unloaded))


def with_text(item: Item, texts: dict[bytes, str]) -> Item:
    """An item of an unchanged page with its stored text filled in (for a new version or a diff)."""
    return replace(item, text=texts[item.text_hash]) if item.text_hash in texts and not item.text else item


def _stored_item(item: ParsedItem, text_hash: bytes) -> Item:
    """A document whose page did not change (or failed): its stored canonical text (by hash; the text is
    loaded only when needed), today's title."""
    title = title_text(item.title, is_html=item.title_is_html)
    raw = json.dumps({"page": item.link, "title": title}, ensure_ascii=False, sort_keys=True).encode()
    return Item(key="", guid=item.guid, link=item.link, title=title, text="", raw=raw, text_hash=text_hash,
                state_hash=state_hash(title, item.link, text_hash))
