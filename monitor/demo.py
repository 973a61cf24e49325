"""`feedwatch demo`: see it work in seconds, offline.

Replays four real states of the Kubernetes contributor community feed (monitor/demo_feed/, from the
replay corpus: a Code of Conduct amendment, then two mentoring programmes moved to "Discontinued
activities") into a throw-away directory, through the same commands a user runs — `run`, `history`,
`diff`, `report` — and ends by saying where the HTML report is. Nothing is fetched from the network.
"""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.errors import UsageError

FEED = Path(__file__).parent / "demo_feed"
STEPS = (("step_053.xml.gz", "2025-01-06", "the community feed as feedwatch first sees it"),
         ("step_054.xml.gz", "2025-03-06", "the CNCF Code of Conduct is amended"),
         ("step_055.xml.gz", "2025-04-11", "a mentoring programme is discontinued"),
         ("step_056.xml.gz", "2025-07-15", "another one follows"))
COC = "https://deploy-preview-670--kubernetes-contributor.netlify.app/community/code-of-conduct/"
MENTORING = "https://deploy-preview-670--kubernetes-contributor.netlify.app/community/mentoring/"

Command = Callable[[Sequence[str]], int]


def workspace(directory: str | None) -> Path:
    """The demo's directory: DIR (new or empty), else a fresh temporary one."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="feedwatch-demo-"))
    path = Path(directory).expanduser().resolve()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"demo: --dir {path} is not an empty directory (the demo writes a database there)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def replay(directory: Path, feedwatch: Command, say: Callable[[str], None]) -> Path:
    """Run the demo in `directory` through `feedwatch` (the command line's main); returns the report."""
    config = directory / "feedwatch.yaml"
    config.write_text("# written by `feedwatch demo`: one feed, read from a local file\n"
                      "database: sqlite:///feedwatch.db\n"
                      "feeds:\n  - name: k8s-community\n    url: feed.xml\n", encoding="utf-8")
    base = ["--config", str(config)]

    def show(*args: str) -> None:
        say(f"\n$ feedwatch --config {config} {' '.join(args)}")
        if feedwatch([*base, "-q", *args]) != 0:
            raise UsageError(f"demo: 'feedwatch {' '.join(args)}' failed (see above)")

    say(f"feedwatch demo: replaying 4 real states of the Kubernetes community feed in {directory}")
    for i, (name, date, what) in enumerate(STEPS, 1):
        (directory / "feed.xml").write_bytes(gzip.decompress((FEED / name).read_bytes()))
        say(f"\n[{i}/{len(STEPS)}] the feed as of {date}: {what}")
        show("run", "--force")
    show("history")
    coc, mentoring = _document_ids(directory / "feedwatch.db")
    show("diff", str(coc))                                   # the Code of Conduct amendment
    show("diff", str(mentoring), "--from", "1", "--to", "2")  # "The 1:1 Hour" moved to Discontinued activities
    report = directory / "report.html"
    show("report", "--output", str(report))
    say(f"\nThe HTML report of these changes is at {report}")
    say(f"(open it in a browser; explore further with: feedwatch --config {config} COMMAND)")
    return report


def _document_ids(database: Path) -> tuple[int, int]:
    """The ids `history` shows for the Code of Conduct and the mentoring page."""
    from storage.store import Store

    with Store.open(f"sqlite:///{database}", readonly=True) as store:
        return store.find_document(COC).id, store.find_document(MENTORING).id
