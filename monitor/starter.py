"""`feedwatch init`: a commented starter config, written where feedwatch looks for one.

The file is checked by the real config loader before it is written, so what `init` writes always passes
`feedwatch check`; an existing file is never overwritten.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from monitor import config
from monitor.errors import ConfigError, UsageError

EXAMPLE_URL = "https://www.kubernetes.dev/community/index.xml"

TEMPLATE = """\
# feedwatch configuration, written by `feedwatch init`. Every key is explained in the README
# ("Configuration") and in config/feedwatch.example.yaml of the source tree. `feedwatch check` validates
# this file; `feedwatch run` polls the feeds that are due.

# Where history is kept. Default: SQLite at $XDG_STATE_HOME/feedwatch/feedwatch.db
# (~/.local/state/feedwatch/feedwatch.db). A relative sqlite:/// path is relative to this file.
# database: sqlite:///feedwatch.db
# database: postgresql+psycopg://feedwatch@db.example.org/feedwatch

# report_url: https://example.org/changes/   # where you publish `feedwatch report`; messages link to it

defaults:
  interval: 1h            # how often each feed is polled (90s, 30m, 6h, 1d)
  # notify: [chat]        # the targets below that hear about changes

# Who is told about changes: Apprise URLs (mailto://, slack://, json://, ... see the Apprise docs).
# Keep secrets out of this file with ${{VARIABLE}} references to the environment.
# targets:
#   chat:
#     urls: ["${{SLACK_URL}}"]
#     format: markdown    # text | markdown | html
#   mail:
#     urls: ["mailtos://bot:${{SMTP_PASSWORD}}@smtp.example.org?to=you@example.org"]
#     format: html
#     mode: digest        # immediate: one message per change; digest: one per run

feeds:
  - name: {name}{name_pad}# a stable name, used on the command line and in the database
    url: {url}
    # interval: 6h        # this feed's own interval
    # paused: true        # keep the history, stop polling
"""


def starter_path(explicit: str | None, env: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """Where `init` writes: --config, else $FEEDWATCH_CONFIG, else $XDG_CONFIG_HOME/feedwatch/config.yaml
    (found from any directory, so cron and systemd find it too)."""
    if explicit:
        return Path(explicit)
    if env.get("FEEDWATCH_CONFIG"):
        return Path(env["FEEDWATCH_CONFIG"])
    return config.user_config_path(env)


def feed_name(url: str) -> str:
    """A feed name from its URL: the host without "www." (or a local file's stem)."""
    try:
        parts = urlsplit(url)
        base = parts.hostname or Path(parts.path or url).stem or "feed"
    except ValueError:          # a malformed URL, refused with the config's own words (write_starter)
        base = "feed"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", base.removeprefix("www.")).strip(".-_")
    return name[:100] or "feed"


def render(url: str | None) -> str:
    url = url or EXAMPLE_URL
    if "://" not in url:
        url = str(Path(url).expanduser().resolve())      # a local file: absolute, so cron finds it too
    name = feed_name(url) if url != EXAMPLE_URL else "k8s-community"
    quoted = json.dumps(url.replace("$", "$$"))     # a YAML double-quoted scalar; $$ keeps a literal $
    return TEMPLATE.format(name=name, name_pad=" " * max(1, 20 - len(name)), url=quoted)


def write_starter(path: Path, url: str | None) -> Path:
    """Write the starter config to `path` (refusing to replace a file); returns its absolute path."""
    text = render(url)
    try:
        config.loads(text, source="feedwatch init", base_dir=path.resolve().parent, env={})
    except ConfigError as exc:
        shown = url if url is None or url.isprintable() else repr(url)     # a control character shown, not sent
        raise UsageError(f"init: {shown}: {str(exc).split(': ', 3)[-1]}") from None
    path = path.resolve()
    if path.exists():
        raise UsageError(f"init: {path} already exists; not overwriting it (edit it, or pass --config NEW-PATH)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise UsageError(f"init: {path} already exists; not overwriting it") from None
    except OSError as exc:
        raise UsageError(f"init: cannot write {path}: {exc.strerror}") from None
    return path
