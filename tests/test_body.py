"""The body rule (monitor.body): the table in tests/cases/body.yaml, and an edit in the full content of a
feed whose items also carry a nested teaser is reported (served on 127.0.0.1, `feedwatch run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.models import FetchResult, Validators
from monitor.normalize import normalize_item
from monitor.parse import parse
from tests.helpers import FeedServer, run_cli, write_config

CASES: list[dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "cases" / "body.yaml").read_text())
NAMESPACES = ('xmlns:content="http://purl.org/rss/1.0/modules/content/" '
              'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:media="http://search.yahoo.com/mrss/"')


def document(fmt: str, inside: str) -> bytes:
    if fmt == "rss":
        return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" {NAMESPACES}><channel><title>f</title>'
                f"<item><guid>a</guid><title>t</title>{inside}</item></channel></rss>").encode()
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" {NAMESPACES}>'
            f"<title>f</title><id>f</id><entry><id>a</id><title>t</title>{inside}</entry></feed>").encode()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_body_rule(case: dict[str, Any]) -> None:
    feed = parse("f", FetchResult("https://e.org/", 200, document(case["format"], case["item"]), None, Validators()))
    [item] = feed.items
    assert normalize_item(item).text == case["text"]


def cloud_blog(article: str) -> bytes:
    return document("rss", '<link>https://cloud.example/blog/launch</link><description>One-sentence teaser.'
                    '</description><og xmlns="http://ogp.me/ns#"><title>Launch</title><description>One-sentence '
                    f"teaser.</description></og><content:encoded><![CDATA[{article}]]></content:encoded>")


def test_an_edit_in_the_full_content_is_reported(tmp_path: Path, server: FeedServer) -> None:
    article = "<h2>Pricing</h2><p>The service costs 10 dollars a month.</p><h2>Regions</h2><p>Three regions.</p>"
    url = server.set("/blog.xml", cloud_blog(article))
    config = write_config(tmp_path / "feedwatch.yaml", f"feeds:\n  - name: cloud\n    url: {url}\n")
    args = ("--config", str(config), "--database", str(tmp_path / "fw.db"))
    assert run_cli(*args, "run").code == 0
    assert "The service costs 10 dollars a month." in run_cli(*args, "show", "a").out
    server.set("/blog.xml", cloud_blog(article.replace("10 dollars", "12 dollars")))
    [change] = run_cli(*args, "run", "--force", "--json").json()["changes"]
    assert (change["kind"], change["sections"], change["inserted"], change["deleted"]) == (
        "changed", ["Pricing"], ["12"], ["10"])
