"""YAML config -> frozen, typed settings, loaded once and passed explicitly (DESIGN §2).

Loading has three steps, each with errors that name the file, line and key path:

1. YAML is composed into nodes (so every key keeps its line) and ``${VAR}`` / ``${VAR:-default}`` are
   replaced from the environment in string values.
2. The node tree is checked against the schema below: unknown and duplicate keys are rejected, with a
   "did you mean" suggestion. msgspec converts the values to the typed structs.
3. The structs are resolved into :class:`Settings`: defaults inherited by each feed, durations and sizes
   parsed, regexes compiled, target names checked.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec
import yaml

from monitor import config_types
from monitor.errors import ConfigError, ConfigErrors
from monitor.humanize import seconds_of
from monitor.models import Retention
from monitor.urls import CONTROL, url_problem

if TYPE_CHECKING:
    from storage.store import Store

# Bumped whenever normalisation changes the canonical text of unchanged input: stored documents are then
# silently re-baselined instead of being reported as changed (see monitor.poll).
NORMALIZER_VERSION = 1
JITTER = 0.1                # a feed's next poll: its interval +-10% after the last one, so feeds spread out
MAX_DOCUMENTS = 1000        # pages of one sitemap source, unless `max_documents` says otherwise
MAX_DURATION = 36500 * 86400.0   # the longest interval, timeout, lease or retention age: 100 years
MERGE_TAG = "tag:yaml.org,2002:merge"   # the `<<` key of YAML 1.1
MAX_ALIAS_REPEATS = 10_000  # collections read again through YAML aliases, in all (a normal config repeats a few)

FEED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ENV = re.compile(r"\$(\$)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?i?b?)$", re.I)

Duration = str | int | float
TEMPLATE_KEYS = ("title", "body", "digest_title", "digest_body", "alert_title", "alert_body", "test_title",
                 "test_body")
T = TypeVar("T")
Positive = Annotated[int, msgspec.Meta(ge=1)]


class _Struct(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class RetentionConfig(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    versions: Positive | None = None   # keep at most this many versions per document
    age: Duration | None = None        # ... and none older than this (the latest is always kept)
    keep_changes: bool = True          # keep change records (summary + diff) of pruned versions


class DefaultsConfig(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    interval: Duration = "1h"
    notify: tuple[str, ...] = ()
    error_notify: tuple[str, ...] | None = None
    removal_grace: Positive = 3
    max_errors: Positive = 3
    notify_baseline: bool = False
    ignore: tuple[str, ...] = ()
    links: bool = False
    timeout: Duration = "30s"
    max_bytes: str | int = "10MiB"
    lenient: bool = False
    retention: RetentionConfig | None = None


class FeedConfig(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    url: str
    interval: Duration | None = None
    notify: tuple[str, ...] | None = None
    error_notify: tuple[str, ...] | None = None
    removal_grace: Positive | None = None
    max_errors: Positive | None = None
    notify_baseline: bool | None = None
    ignore: tuple[str, ...] = ()
    links: bool | None = None
    timeout: Duration | None = None
    max_bytes: str | int | None = None
    lenient: bool | None = None
    retention: RetentionConfig | None = None
    # Sources beyond a feed's own text (DESIGN §2b)
    kind: Literal["feed", "page", "sitemap"] = "feed"
    follow: bool = False               # kind feed: each item's document is its linked page
    select: tuple[str, ...] = ()       # CSS selectors (or "xpath:...") of the part of a page that is the document
    exclude: tuple[str, ...] = ()      # ... removed first
    include: tuple[str, ...] = ()      # kind sitemap: URL regexes kept (default: all)
    exclude_urls: tuple[str, ...] = () # kind sitemap: URL regexes dropped
    max_documents: Positive | None = None   # kind sitemap: at most this many pages (default 1000)
    group: str | None = None           # a folder for OPML export ("News/Tech" nests); nothing else reads it
    paused: bool = False                # kept with its history, but not polled


class TargetConfig(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    urls: tuple[str, ...] = ()
    config: str | None = None          # an Apprise config file (YAML or TEXT)
    format: Literal["text", "markdown", "html"] = "markdown"
    mode: Literal["immediate", "digest"] = "immediate"
    digest_period: Duration | None = None
    title: str | None = None           # Jinja2 templates of a change message ...
    body: str | None = None
    digest_title: str | None = None    # ... of a digest (mode: digest) ...
    digest_body: str | None = None
    alert_title: str | None = None     # ... of error, recovery and dead-delivery alerts ...
    alert_body: str | None = None
    test_title: str | None = None      # ... and of `notify-test`'s message
    test_body: str | None = None
    max_attempts: Positive = 100       # with the back-off of monitor.notify: about four days
    max_length: Positive = 4000        # characters of rendered diff in a message


class PollingConfig(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    concurrency: Positive = 8          # fetches in flight in one process
    per_host: Positive = 2             # fetches in flight per host
    user_agent: str | None = None
    lease: Duration = "60s"            # how long a claimed feed stays ours without renewal
    processes: Positive | None = None  # poller processes for a big `run` (default: one per CPU)


class RawConfig(_Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    database: str | None = None
    report_url: str | None = None      # where published reports live; linked from notifications
    polling: PollingConfig = PollingConfig()
    defaults: DefaultsConfig = DefaultsConfig()
    targets: dict[str, dict[str, Any]] = {}   # converted one by one, for precise errors
    feeds: tuple[FeedConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedSettings:
    name: str
    url: str
    interval: float = 3600.0
    notify: tuple[str, ...] = ()
    error_notify: tuple[str, ...] = ()
    removal_grace: int = 3
    max_errors: int = 3
    notify_baseline: bool = False
    ignore: tuple[re.Pattern[str], ...] = ()
    links: bool = False
    timeout: float = 30.0
    max_bytes: int = 10 << 20
    lenient: bool = False
    retention: Retention = field(default_factory=Retention)
    kind: str = "feed"              # feed | page | sitemap
    follow: bool = False
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include: tuple[re.Pattern[str], ...] = ()
    exclude_urls: tuple[re.Pattern[str], ...] = ()
    max_documents: int = MAX_DOCUMENTS
    group: str | None = None

    paused: bool = False
    # Hash of everything that shapes canonical text; a change re-baselines the feed silently. Computed once
    # (a poll reads it four times).
    settings_hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec: list[object] = [NORMALIZER_VERSION, self.links, *(p.pattern for p in self.ignore)]
        if self.fetches_pages:     # appended only for page sources: plain feeds keep their hash
            spec += [self.kind, self.follow, self.select, self.exclude]
        if self.kind == "sitemap":   # which pages are documents: a change re-baselines, it is not news
            spec += [[p.pattern for p in self.include], [p.pattern for p in self.exclude_urls], self.max_documents]
        object.__setattr__(self, "settings_hash", hashlib.sha256(repr(spec).encode()).digest())

    @property
    def longest_wait(self) -> float:
        """Seconds a healthy feed waits at most between polls: its interval and its jitter."""
        return self.interval * (1 + JITTER)

    @property
    def fetches_pages(self) -> bool:
        """Whether the source's documents are web pages (page, sitemap, or a feed with follow)."""
        return self.kind != "feed" or self.follow


@dataclass(frozen=True, slots=True)
class TargetSettings:
    name: str
    urls: tuple[str, ...]
    config_file: Path | None = None
    format: str = "markdown"
    mode: str = "immediate"
    digest_period: float | None = None
    templates: Mapping[str, str] = field(default_factory=dict)     # TEMPLATE_KEYS given in the config
    template_lines: Mapping[str, int] = field(default_factory=dict)  # ... and the line each is on
    max_attempts: int = 100
    max_length: int = 4000


@dataclass(frozen=True, slots=True)
class PollingSettings:
    concurrency: int = 8
    per_host: int = 2
    user_agent: str | None = None
    lease: float = 60.0
    processes: int | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    source: Path | None
    database_url: str
    feeds: tuple[FeedSettings, ...] = ()
    targets: Mapping[str, TargetSettings] = field(default_factory=dict)
    polling: PollingSettings = field(default_factory=PollingSettings)
    report_url: str | None = None
    key_lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)  # key path -> line

    _by_name: dict[str, FeedSettings] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.feeds})

    def feed(self, name: str) -> FeedSettings:
        """The feed named `name` (KeyError if none)."""
        return self._by_name[name]

    def located(self, problem: str) -> str:
        """A problem found later ("targets.chat.urls[0]: what is wrong") as a config error line naming the
        file and the key's line: "config: FILE:LINE: targets.chat.urls[0]: what is wrong"."""
        key, _, message = problem.partition(": ")
        source = str(self.source) if self.source else None
        if not message:
            return str(ConfigError(problem, source=source))
        return str(ConfigError(message, source=source, line=line_of(self.key_lines, key), key=key))

    def polled(self, names: Sequence[str] | None = None) -> list[FeedSettings]:
        """The feeds `run` and `watch` poll: those named (default: all), without the paused ones."""
        return [f for f in self.feeds if not f.paused and (names is None or f.name in names)]

    def sync(self, store: Store, names: Sequence[str] | None = None) -> dict[str, int]:
        """The polled feeds' rows, made to match this config (Store.sync_feeds): name -> id."""
        polled = self.polled(names)
        return store.sync_feeds([(f.name, f.url) for f in polled],
                                longest_waits={f.name: f.longest_wait for f in polled})


# ---------------------------------------------------------------------------------------------- locating


def find_config(explicit: str | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """The config file to use: --config, $FEEDWATCH_CONFIG, ./feedwatch.yaml, $XDG_CONFIG_HOME/..."""
    if explicit:
        return Path(explicit)
    if env.get("FEEDWATCH_CONFIG"):
        return Path(env["FEEDWATCH_CONFIG"])
    local = Path("feedwatch.yaml")
    if local.is_file():
        return local
    xdg = user_config_path(env)
    return xdg if xdg.is_file() else None


def user_config_path(env: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CONFIG_HOME/feedwatch/config.yaml (~/.config/... without it): found from any directory."""
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "feedwatch" / "config.yaml"


def default_database_url(env: Mapping[str, str] = os.environ) -> str:
    """SQLite in the state directory: $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/feedwatch."""
    if env.get("STATE_DIRECTORY"):
        base = Path(env["STATE_DIRECTORY"].split(":")[0])
    else:
        base = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "feedwatch"
    return f"sqlite:///{base / 'feedwatch.db'}"


def resolve_database_url(url: str, relative_to: Path) -> str:
    """Make a relative SQLite path relative to `relative_to` (the config file's directory)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((relative_to / url[len(prefix):]).resolve())
    return url


def listed_names(path: Path, section: str) -> list[str]:
    """The feed names (section "feeds") or target names ("targets") written in a config file, read
    leniently for shell completion: no interpolation, no checks, nothing raised."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    entries = data.get(section) if isinstance(data, dict) else None
    if isinstance(entries, dict):
        return [str(k) for k in entries]
    if isinstance(entries, list):
        return [str(e["name"]) for e in entries if isinstance(e, dict) and "name" in e]
    return []


# ---------------------------------------------------------------------------------------------- loading


def load(path: Path, env: Mapping[str, str] = os.environ) -> Settings:
    """Read, check and resolve a config file. Raises ConfigError naming file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path)) from None
    except UnicodeDecodeError as exc:       # where, in the file's own terms: the line
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 (byte 0x{exc.object[exc.start]:02x}): save the file as UTF-8",
                          source=str(path), line=line) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from None
    return loads(text, source=str(path), base_dir=path.resolve().parent, env=env)


def loads(text: str, *, source: str = "<config>", base_dir: Path | None = None,
          env: Mapping[str, str] = os.environ) -> Settings:
    doc = _Document(source, env)
    try:
        data = doc.parse(text)
        raw = doc.raw_config(data)
        settings = _Resolver(doc, base_dir or Path.cwd()).settings(raw)
        doc.raise_problems()
        return settings
    except ConfigError as exc:
        raise doc.without_env_values(exc) from None


class _Document:
    """One YAML document with the line of every key path ("feeds[2].interval" -> 14)."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.lines: dict[str, int] = {}
        self.used_env: dict[str, str] = {}      # values put in by ${VAR}: never echoed in an error
        self.problems: list[ConfigError] = []
        self.feed_positions: list[int] = []          # index in the file of each feed kept by raw_config
        self._constructor = yaml.SafeLoader("")
        self._open: set[int] = set()        # the collections being read (an alias to one of them is a loop)
        self._seen: set[int] = set()        # the nodes read once: reading one again is an alias's expansion
        self._repeats = 0

    def without_env_values(self, exc: ConfigError) -> ConfigError:
        """`exc` with every value that came from the environment shown as its ${VAR} (it may be a secret
        used in the wrong key, e.g. a webhook URL given as an interval)."""
        text = str(exc)
        for name, value in sorted(self.used_env.items(), key=lambda kv: len(kv[1]), reverse=True):
            if len(value) >= 4:
                text = text.replace(value, f"${{{name}}}")
        exc.args = (text,)
        for each in getattr(exc, "errors", []):     # ConfigErrors: each of its lines too
            self.without_env_values(each)
        return exc

    def report(self, path: str, message: str, *, key: str | None = None) -> None:
        """Record one problem (at `path`'s line); loading goes on to find the others. A problem inherited
        by every feed (a bad default) is recorded once."""
        problem = ConfigError(message, source=self.source, line=self._line(path), key=key)
        if str(problem) not in {str(p) for p in self.problems}:
            self.problems.append(problem)

    def raise_problems(self) -> None:
        """ConfigErrors with every problem recorded, in the order of the file."""
        if self.problems:
            ordered = sorted(self.problems, key=lambda e: e.line or 0)
            raise ConfigErrors(ordered) if len(ordered) > 1 else ordered[0]

    def parse(self, text: str) -> Any:
        loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            node = yaml.compose(text, Loader=loader_cls)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            raise ConfigError(f"invalid YAML: {exc.problem}", source=self.source, line=line) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", source=self.source) from None
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError("the top level must be a mapping of keys", source=self.source,
                              line=node.start_mark.line + 1)
        return self._value(node, "")

    def _value(self, node: yaml.Node, path: str) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self._enter(node, path)
            try:
                return self._collection(node, path)
            finally:
                self._open.discard(id(node))
        value = self._constructor.construct_object(node)
        if isinstance(value, str) and "$" in value:
            value = self._interpolate(value, path)
        return value

    def _enter(self, node: yaml.Node, path: str) -> None:
        """Refuse an alias to a collection that contains it (an endless value), and aliases that repeat
        collections more than MAX_ALIAS_REPEATS times in all (a "billion laughs" of a few lines)."""
        line = node.start_mark.line + 1
        if id(node) in self._open:
            raise ConfigError("a YAML alias refers to a value that contains it (an endless value)",
                              source=self.source, line=line, key=path or None)
        if id(node) in self._seen:
            self._repeats += 1
            if self._repeats > MAX_ALIAS_REPEATS:
                raise ConfigError(f"YAML aliases repeat values more than {MAX_ALIAS_REPEATS:,} times",
                                  source=self.source, line=line, key=path or None)
        self._seen.add(id(node))
        self._open.add(id(node))

    def _collection(self, node: yaml.MappingNode | yaml.SequenceNode, path: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            merged: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == MERGE_TAG:    # `<<: *defaults`: the anchored keys, unless given here
                    given = {k: self.lines[f"{path}.{k}" if path else k] for k in out}
                    for key, value in self._merged(value_node, path, key_node.start_mark.line + 1).items():
                        merged.setdefault(key, value)
                    self.lines.update({f"{path}.{k}" if path else k: line for k, line in given.items()})
                    continue
                key = str(key_node.value)
                sub = f"{path}.{key}" if path else key
                if key in out:
                    self.problems.append(ConfigError("duplicate key", source=self.source,
                                                     line=key_node.start_mark.line + 1, key=sub))
                    continue
                self.lines[sub] = key_node.start_mark.line + 1
                out[key] = self._value(value_node, sub)
            return {**{k: v for k, v in merged.items() if k not in out}, **out} if merged else out
        return [self._value(v, f"{path}[{i}]") for i, v in enumerate(node.value)]

    def _merged(self, node: yaml.Node, path: str, line: int) -> dict[str, Any]:
        """A merge key's mappings (one, or a list of them, the first winning), as YAML 1.1 merges them."""
        out: dict[str, Any] = {}
        for source in node.value if isinstance(node, yaml.SequenceNode) else [node]:
            if not isinstance(source, yaml.MappingNode):
                self.problems.append(ConfigError("'<<' merges mappings only (<<: *anchor, or a list of them)",
                                                 source=self.source, line=line, key=f"{path}.<<" if path else "<<"))
                continue
            for key, value in self._value(source, path).items():
                out.setdefault(key, value)
        return out

    def _interpolate(self, value: str, path: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(1):
                return "$"
            name, default = m.group(2), m.group(3)
            if name in self.env and (self.env[name] or default is None):   # :- as in the shell: unset or empty
                self.used_env[name] = self.env[name]
                return self.env[name]
            if default is not None:
                return default
            self.problems.append(ConfigError(f"environment variable {name} is not set (use ${{{name}:-default}} "
                                             "for a default)", source=self.source, line=self.lines.get(path), key=path))
            return m.group(0)
        return _ENV.sub(repl, value)

    def convert(self, data: Any, typ: type[T], path: str) -> T | None:
        """`data` as a `typ`, or None after recording each of its problems (in YAML's terms)."""
        found = list(config_types.problems(data, typ, path))
        for where, message in found:
            self.report(where, message, key=where or None)
        return None if found else msgspec.convert(data, typ)

    def raw_config(self, data: dict[str, Any]) -> RawConfig:
        """The top level after recording every structural problem, without the keys that have one: the
        rest is still resolved and checked (a feed missing its name or url is left out entirely)."""
        found = list(config_types.problems(data, RawConfig, ""))
        for where, message in found:
            self.report(where, message, key=where or None)
        bad = {where for where, _ in found}
        parts: dict[str, Any] = {}
        for key, value in data.items():
            if key in RawConfig.__struct_fields__ and key not in bad and key != "feeds":
                parts[key] = _without(value, bad, key)
        feeds = data.get("feeds")
        if isinstance(feeds, list) and "feeds" not in bad:
            self.feed_positions = [i for i in range(len(feeds)) if f"feeds[{i}]" not in bad]
            parts["feeds"] = [_without(feeds[i], bad, f"feeds[{i}]") for i in self.feed_positions]
        try:
            return msgspec.convert(parts, RawConfig)
        except msgspec.ValidationError:     # not expected once the problems are out; the problems say why
            self.raise_problems()
            raise

    def _line(self, path: str) -> int | None:
        return line_of(self.lines, path)


def _without(value: Any, bad: set[str], path: str) -> Any:
    """`value` without the keys (at any depth) whose key path has a problem."""
    if isinstance(value, dict):
        return {k: _without(v, bad, f"{path}.{k}") for k, v in value.items() if f"{path}.{k}" not in bad}
    if isinstance(value, list):
        return [_without(v, bad, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def line_of(lines: Mapping[str, int], path: str) -> int | None:
    """The line of a key path, or of the nearest enclosing key that has one."""
    while path:
        if path in lines:
            return lines[path]
        up = re.sub(r"(\.[^.\[]+|\[[^\]]*\])$", "", path)
        path = up if up != path else ""      # a top-level key without a line: no line
    return None


# ---------------------------------------------------------------------------------------------- resolving


class _Resolver:
    def __init__(self, doc: _Document, base_dir: Path) -> None:
        self.doc = doc
        self.base_dir = base_dir

    def settings(self, raw: RawConfig) -> Settings:
        parsed = {name: self.target(name, t) for name, t in raw.targets.items()}   # None: broken, reported
        targets = {name: t for name, t in parsed.items() if t is not None}
        self.check_target_refs(raw.defaults.notify, "defaults.notify", parsed)
        self.check_target_refs(raw.defaults.error_notify or (), "defaults.error_notify", parsed)
        feeds: list[FeedSettings] = []
        seen: dict[str, int] = {}
        for i, feed in zip(self.doc.feed_positions, raw.feeds, strict=True):   # i: its place in the file
            path = f"feeds[{i}]"
            if not FEED_NAME.match(feed.name):
                self.doc.report(f"{path}.name", f"feeds[{i}].name: '{feed.name}' is not a valid name "
                                "(letters, digits, '.', '_' and '-'; at most 100)")
            if feed.name in seen:
                self.doc.report(f"{path}.name", f"feeds[{i}].name: duplicate feed name '{feed.name}' "
                                f"(first used in feeds[{seen[feed.name]}])")
                continue
            seen[feed.name] = i
            feeds.append(self.feed(feed, raw.defaults, path, parsed))
        self.check_text(raw.polling.user_agent, "polling.user_agent", "a User-Agent")
        if raw.report_url is not None and not re.match(r"(?i)^https?://[^/\s]", raw.report_url):
            self.doc.report("report_url", "report_url: must be an http(s) URL (where the published report is read)")
        if raw.database is not None and not raw.database.strip():   # e.g. ${FEEDWATCH_DATABASE} set to nothing
            self.doc.report("database", "database: empty (an environment variable set to nothing?); remove the "
                            "key for the default database")
        database = raw.database or default_database_url(self.doc.env)
        return Settings(
            source=Path(self.doc.source) if self.doc.source != "<config>" else None,
            database_url=resolve_database_url(database, self.base_dir),
            feeds=tuple(feeds), targets=targets, report_url=raw.report_url, key_lines=self.doc.lines,
            polling=PollingSettings(raw.polling.concurrency, raw.polling.per_host, raw.polling.user_agent,
                                    self.duration(raw.polling.lease, "polling.lease"), raw.polling.processes),
        )

    def feed(self, f: FeedConfig, d: DefaultsConfig, path: str,
             targets: Mapping[str, TargetSettings | None]) -> FeedSettings:
        notify = f.notify if f.notify is not None else d.notify
        error_notify = f.error_notify if f.error_notify is not None else d.error_notify
        self.check_target_refs(f.notify or (), f"{path}.notify", targets)
        self.check_target_refs(f.error_notify or (), f"{path}.error_notify", targets)
        self.check_url(f.url, f"{path}.url")
        pick: Callable[[Any, Any], Any] = lambda own, default: default if own is None else own  # noqa: E731
        where: Callable[[Any, str], str] = lambda own, key: (   # noqa: E731  (an inherited value: defaults.KEY)
            f"{path}.{key}" if own is not None else f"defaults.{key}")
        return FeedSettings(
            name=f.name,
            url=self.local_path(f.url),
            interval=self.duration(pick(f.interval, d.interval), where(f.interval, "interval")),
            notify=tuple(notify),
            error_notify=tuple(error_notify if error_notify is not None else notify),
            removal_grace=pick(f.removal_grace, d.removal_grace),
            max_errors=pick(f.max_errors, d.max_errors),
            notify_baseline=pick(f.notify_baseline, d.notify_baseline),
            ignore=self.patterns(d.ignore, "defaults.ignore") + self.patterns(f.ignore, f"{path}.ignore"),
            links=pick(f.links, d.links),
            timeout=self.duration(pick(f.timeout, d.timeout), where(f.timeout, "timeout")),
            max_bytes=self.size(pick(f.max_bytes, d.max_bytes), where(f.max_bytes, "max_bytes")),
            lenient=pick(f.lenient, d.lenient),
            retention=self.retention(f.retention or d.retention, where(f.retention, "retention")),
            **self.source(f, path),
            group=f.group,
            paused=f.paused,
        )

    def source(self, f: FeedConfig, path: str) -> dict[str, Any]:
        """The keys of sources beyond a feed's own text (DESIGN §2b), checked for the source's kind."""
        misplaced = [("follow", f.follow, f.kind != "feed", "only a feed (kind: feed) has items to follow"),
                     ("include", f.include, f.kind != "sitemap", "only applies to kind: sitemap"),
                     ("exclude_urls", f.exclude_urls, f.kind != "sitemap", "only applies to kind: sitemap"),
                     ("max_documents", f.max_documents, f.kind != "sitemap", "only applies to kind: sitemap")]
        for key, value, wrong, why in misplaced:
            if value and wrong:
                self.doc.report(f"{path}.{key}", f"{path}.{key}: {why}")
        pages = f.kind != "feed" or f.follow
        for key in ("select", "exclude"):
            if getattr(f, key) and not pages:
                self.doc.report(f"{path}.{key}", f"{path}.{key}: selects part of a web page; it applies "
                                "with follow: true, kind: page or kind: sitemap")
            self.selectors(getattr(f, key), f"{path}.{key}")
        return {"kind": f.kind, "follow": f.follow, "select": f.select, "exclude": f.exclude,
                "include": self.patterns(f.include, f"{path}.include"),
                "exclude_urls": self.patterns(f.exclude_urls, f"{path}.exclude_urls"),
                "max_documents": f.max_documents or MAX_DOCUMENTS}

    def selectors(self, selectors: tuple[str, ...], path: str) -> None:
        if not selectors:
            return
        from monitor.select import SelectorInvalid, compile_selector  # lxml.html + cssselect: only when used

        for i, selector in enumerate(selectors):
            try:
                compile_selector(selector)
            except SelectorInvalid as exc:
                self.doc.report(f"{path}[{i}]", f"{path}[{i}]: {exc}")

    def target(self, name: str, data: Any) -> TargetSettings | None:
        path = f"targets.{name}"
        t = self.doc.convert(data, TargetConfig, path)
        if t is None:
            return None
        if not t.urls and not t.config:
            self.doc.report(path, f"{path}: needs 'urls' or 'config'")
        config_file = None
        if t.config:
            config_file = Path(t.config)
            if not config_file.is_absolute():
                config_file = (self.base_dir / config_file).resolve()
        period = self.duration(t.digest_period, f"{path}.digest_period") if t.digest_period else None
        templates = {k: getattr(t, k) for k in TEMPLATE_KEYS if getattr(t, k) is not None}
        lines = {k: self.doc.lines[f"{path}.{k}"] for k in templates if f"{path}.{k}" in self.doc.lines}
        return TargetSettings(name=name, urls=t.urls, config_file=config_file, format=t.format, mode=t.mode,
                              digest_period=period, templates=templates, template_lines=lines,
                              max_attempts=t.max_attempts, max_length=t.max_length)

    def check_target_refs(self, names: tuple[str, ...], path: str, targets: Mapping[str, Any]) -> None:
        for i, name in enumerate(names):
            if name not in targets:
                known = ", ".join(sorted(targets)) or "none are defined"
                self.doc.report(f"{path}[{i}]", f"{path}: unknown target '{name}' (targets: {known})")
            elif name in names[:i]:    # one outbox row per (change, target): a second would be refused
                self.doc.report(f"{path}[{i}]", f"{path}: target '{name}' is listed twice")

    def check_url(self, url: str, path: str) -> None:
        scheme = url.split(":", 1)[0].lower() if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url) else ""
        if scheme and scheme not in ("http", "https", "file"):
            self.doc.report(path, f"{path}: unsupported URL scheme '{scheme}' (http, https, file or a local path)")
        if not url.strip():
            self.doc.report(path, f"{path}: empty URL")
        elif bad := CONTROL.search(url):
            self.doc.report(path, f"{path}: a URL cannot hold a control character ({bad.group()!r})")
        elif scheme in ("http", "https") and (problem := url_problem(url)):
            self.doc.report(path, f"{path}: invalid URL: {problem}")

    def check_text(self, value: str | None, path: str, what: str) -> None:
        """A value sent as a header (or part of one): no control characters, which would end the header."""
        if value is not None and (bad := CONTROL.search(value)):
            self.doc.report(path, f"{path}: {what} cannot hold a control character ({bad.group()!r})")

    def local_path(self, url: str) -> str:
        """A feed URL that is a plain path: relative to the config file's directory (like a relative
        sqlite:/// database), so cron and systemd, which start elsewhere, read the same file."""
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url) and not re.match(r"^[A-Za-z]:[\\/]", url):
            return url
        path = Path(url).expanduser()
        return str(path if path.is_absolute() else (self.base_dir / path).resolve())

    def duration(self, value: Any, path: str) -> float:
        seconds = parse_duration(value)
        if seconds is None:
            self.doc.report(path, f"{path}: '{value}' is not a duration (e.g. 90s, 30m, 6h, 1d)")
            return 1.0
        if seconds <= 0:
            self.doc.report(path, f"{path}: '{value}' must be longer than nothing (e.g. 90s, 30m, 6h, 1d)")
            return 1.0
        if seconds > MAX_DURATION:      # past what a date can be counted forward (or back) to
            self.doc.report(path, f"{path}: '{value}' is longer than {MAX_DURATION // 86400:.0f}d (100 years)")
            return 1.0
        return seconds

    def size(self, value: Any, path: str) -> int:
        n = parse_size(value)
        if n is None or n <= 0:
            self.doc.report(path, f"{path}: '{value}' is not a size (e.g. 500KB, 10MiB)")
            return 1
        return n

    def patterns(self, patterns: tuple[str, ...], path: str) -> tuple[re.Pattern[str], ...]:
        out = []
        for i, p in enumerate(patterns):
            try:
                out.append(re.compile(p))
            except re.error as exc:
                self.doc.report(f"{path}[{i}]", f"{path}[{i}]: invalid regex: {exc}")
        return tuple(out)

    def retention(self, r: RetentionConfig | None, path: str) -> Retention:
        if r is None:
            return Retention()
        age = self.duration(r.age, f"{path}.age") if r.age is not None else None
        return Retention(versions=r.versions, age=age, keep_changes=r.keep_changes)


def parse_duration(value: Any) -> float | None:
    """'90s', '30m', '6h', '1d', '1h30m', or a number of seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return seconds_of(value, bare=True) if isinstance(value, str) else None


def parse_size(value: Any) -> int | None:
    """'10MiB', '500KB', '2M', or a number of bytes (K/M/G are powers of 1024)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    m = _SIZE.match(value.strip())
    if not m:
        return None
    unit = m.group(2).lower()[:1]
    return int(float(m.group(1)) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit])
