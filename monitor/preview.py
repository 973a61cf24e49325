"""`feedwatch preview`: what feedwatch would store for a URL, with nothing written (DESIGN §2b).

The same stages as a poll (fetch, parse or select, normalise, identity), without storage and without
validators: every page is fetched in full. It is the way to tune `select` / `exclude` before a source
goes into the config.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from monitor import identity, pages
from monitor.config import FeedSettings
from monitor.errors import FeedError, UsageError
from monitor.fetch import Fetcher
from monitor.models import Item
from monitor.poll import parsed_items, process_body
from monitor.select import SelectorInvalid, compile_selector


@dataclass(frozen=True, slots=True)
class Preview:
    items: list[Item]
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def source(url: str, *, kind: str = "feed", follow: bool = False, select: Sequence[str] = (),
           exclude: Sequence[str] = (), timeout: float = 30.0, max_bytes: int = 10 << 20) -> FeedSettings:
    """The settings of a source given on the command line; selectors are checked here."""
    for option, selectors in (("--select", select), ("--exclude", exclude)):
        for selector in selectors:
            try:
                compile_selector(selector)
            except SelectorInvalid as exc:
                raise UsageError(f"{option}: {exc}") from None
    if not url.strip():
        raise UsageError("preview: give the URL of a feed, a page or a sitemap")
    if follow and kind != "feed":
        raise UsageError("--follow applies to feeds (--kind feed) only")
    if (select or exclude) and kind == "feed" and not follow:
        raise UsageError("--select/--exclude pick part of a web page: add --follow, or use --kind page/sitemap")
    return FeedSettings(name="preview", url=url, kind=kind, follow=follow, select=tuple(select),
                        exclude=tuple(exclude), timeout=timeout, max_bytes=max_bytes)


def preview(feed: FeedSettings) -> Preview:
    """Fetch and normalise `feed` as a poll would; a source that fails as a whole is one error."""
    try:
        return asyncio.run(_preview(feed))
    except FeedError as err:
        return Preview([], (str(err),))


async def _preview(feed: FeedSettings) -> Preview:
    async with Fetcher() as fetcher:
        fetched = await fetcher.fetch(feed.name, feed.url, None, timeout=feed.timeout, max_bytes=feed.max_bytes)
        if not feed.fetches_pages or feed.kind == "page":
            return Preview(process_body(feed, fetched))
        if feed.kind == "sitemap":
            entries, _ = await pages.sitemap_entries(feed, fetched, fetcher)
        else:
            entries = pages.follow_entries(parsed_items(feed, fetched), fetched.url)
        read = await pages.read_pages(feed, entries.entries, {}, fetcher, use_validators=False)
        docs = pages.documents(feed, read.reads, base=fetched.url)
        return Preview(identity.assign_keys(docs.items), docs.errors, tuple(entries.warnings))
