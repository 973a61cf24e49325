"""Messages from Jinja2 templates: the only module that imports jinja2.

- Every kind of message has its own templates, overridable per target: a change (``title``/``body``), a
  digest (``digest_title``/``digest_body``), alerts about a feed or a delivery (``alert_title``/
  ``alert_body``: kinds error, recovery, dead) and the test message (``test_title``/``test_body``).
  The built-in ones are ``config/templates/KIND.FORMAT.j2``.
- Templates run sandboxed with ``StrictUndefined``: a misspelt variable is an error, never silence.
  ``check_templates`` compiles every template of every target and renders it against a sample change,
  so ``feedwatch check`` finds what would fail at send time; at send time a template error is a
  ``TemplateProblem`` for that target's delivery, never the process's.
- Feed text is escaped by the environment, whatever a template does: every ``{{ … }}`` is made inert for
  the target's format (``render.plain`` for text, ``render.md_escape`` for markdown, HTML autoescape),
  except the values feedwatch rendered itself (the diff, safe links). ``None`` prints as nothing.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
from markupsafe import Markup

from monitor import headline, render
from monitor.config import Settings, TargetSettings
from monitor.errors import ConfigError, FeedwatchError
from monitor.models import (
    ChangeContext,
    ChangeKind,
    DiffOp,
    DocumentDiff,
    Message,
    Op,
    RecordedChange,
    SectionDiff,
)

HTML_MARKUP = 4               # an html diff may take this many characters per character of max_length
EXTENSIONS = {"text": "txt", "markdown": "md", "html": "html"}
TEMPLATE_DIRS = (Path(__file__).parent / "templates", Path(__file__).parent.parent / "config" / "templates")
# kind of message -> (template file, the target's title key, its body key)
KINDS = {
    "change": ("change", "title", "body"),
    "digest": ("digest", "digest_title", "digest_body"),
    "error": ("alert", "alert_title", "alert_body"),
    "recovery": ("alert", "alert_title", "alert_body"),
    "dead": ("alert", "alert_title", "alert_body"),
    "test": ("test", "test_title", "test_body"),
}
LEVELS = {"error": "failure", "recovery": "success", "dead": "warning"}     # else info
DEFAULT_TITLES = {
    "change": "feedwatch: {{ title }} {{ happened }}",
    "digest": "feedwatch: {{ count }} change{{ 's' if count != 1 else '' }} in {{ feeds | join(', ') }}",
    "error": "feedwatch: feed {{ feed }} is failing",
    "recovery": "feedwatch: feed {{ feed }} works again",
    "dead": "feedwatch: notifications to {{ target }} are failing",
    "test": "feedwatch: test message",
}
# Every alert template sees all of these (None where they do not apply), so a misspelling is the only
# undefined variable.
ALERT_VARIABLES = ("kind", "feed", "feed_url", "target", "error", "count", "attempts", "dead", "next_retry",
                   "report_url")


class TemplateProblem(FeedwatchError):
    """A target's template does not compile or render (that target's delivery error)."""


class Trusted(str):
    """Markdown or text feedwatch rendered itself: printed as is (the markdown analogue of Markup)."""


# ------------------------------------------------------------------------------------------------ rendering


class Renderer:
    """Messages for targets from their templates (sandboxed; escaped for the target's format)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        loader = jinja2.FileSystemLoader([str(d) for d in TEMPLATE_DIRS if d.is_dir()])
        self.envs = {fmt: _environment(fmt, loader) for fmt in EXTENSIONS}

    def message(self, target: TargetSettings, kind: str, variables: Mapping[str, Any], *,
                text_variables: Mapping[str, Any] | None = None, delivery_id: str | None = None) -> Message:
        """Render `kind` for `target` (TemplateProblem if its templates fail). For an html target,
        `text_variables` render the plain-text alternative with the built-in text template."""
        file, title_key, body_key = KINDS[kind]
        try:
            title = self._title(target.templates.get(title_key) or DEFAULT_TITLES[kind], variables)
            body = self._body(target.format, target.templates.get(body_key), file, variables)
            text = None
            if target.format == "html":
                text = self._body("text", None, file, text_variables or variables)
        except jinja2.TemplateError as exc:
            raise TemplateProblem(f"targets.{target.name}: {describe(exc)}") from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            # A template can compute: `{{ version + "x" }}` fails in Python, not in Jinja.
            raise TemplateProblem(f"targets.{target.name}: template error: {type(exc).__name__}: {exc}") from None
        return Message(title=title, body=body, format=target.format, level=LEVELS.get(kind, "info"), text=text,
                       delivery_id=delivery_id)

    def _title(self, source: str, variables: Mapping[str, Any]) -> str:
        title = self.envs["text"].from_string(source).render(**variables)
        return " ".join(title.split())[:250]

    def _body(self, fmt: str, source: str | None, file: str, variables: Mapping[str, Any]) -> str:
        env = self.envs[fmt]
        template = env.from_string(source) if source else env.get_template(f"{file}.{EXTENSIONS[fmt]}.j2")
        return template.render(**variables).strip() + "\n"

    # -------------------------------------------------------------------------------------- variables

    def change_variables(self, ctx: ChangeContext, fmt: str, budget: int) -> dict[str, Any]:
        """The variables of a change message in format `fmt`, its diff within `budget` characters."""
        c = ctx.change
        link = self.change_link(c.id)
        diff_text: Any = ""
        if c.diff is not None:
            hint = None if link else f"see: feedwatch diff {c.document_id} --to {c.version}"
            if fmt == "html":   # inline styles: the same text takes about twice the characters
                diff_text = Markup(render.render_html(c.diff, max_chars=HTML_MARKUP * budget, more_hint=hint))
            elif fmt == "markdown":
                diff_text = Trusted(render.render_markdown(c.diff, max_length=budget, more_hint=hint))
            else:
                diff_text = Trusted(render.unmention(
                    render.render_text(c.diff, max_chars=budget, more_hint=hint).rstrip("\n")))
        return {
            "feed": c.feed, "title": c.title, "url": c.link, "document": c.guid or c.link or str(c.document_id),
            "document_id": c.document_id, "version": c.version, "from_version": c.from_version,
            "kind": c.kind.value, "summary": c.summary, "sections": render.sections_of(c.diff),
            "diff": diff_text, "excerpt": _truncate(ctx.excerpt, budget) if ctx.excerpt else None,
            "revert_of": c.revert_of, "returned": c.returned, "happened": headline.happened(c),
            "detected_at": c.detected_at.isoformat(timespec="seconds"),
            "report_url": self.settings.report_url, "change_url": link,
        }

    def change_link(self, change_id: int) -> str | None:
        """The change's own entry in the published report (its anchor), if there is one."""
        if not self.settings.report_url:
            return None
        return urllib.parse.urldefrag(self.settings.report_url).url + f"#change-{change_id}"

    def alert_variables(self, kind: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = dict.fromkeys(ALERT_VARIABLES)
        out.update({k: v for k, v in payload.items() if k in ALERT_VARIABLES})
        out.update(kind=kind, report_url=self.settings.report_url)
        return out


def _environment(fmt: str, loader: jinja2.BaseLoader) -> jinja2.sandbox.SandboxedEnvironment:
    escape = {"text": render.plain, "markdown": render.md_escape, "html": render.inert}[fmt]

    def finalize(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, Trusted) or (fmt == "html" and isinstance(value, Markup)):
            return value         # feedwatch's own rendering (Markup: also `tojson`, inert in HTML only)
        return escape(str(value))

    def unmarked(value: Any) -> Any:
        """What `safe` and `urlize` give a template: the value as it was (feedwatch's own renderings stay
        trusted); never feed text marked safe, never links made live from it."""
        return value if isinstance(value, Trusted | Markup) or value is None else str(value)

    env = jinja2.sandbox.SandboxedEnvironment(
        loader=loader, autoescape=fmt == "html", trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined, finalize=finalize)
    env.filters["safe"] = env.filters["urlize"] = unmarked
    env.filters["md"] = lambda v: Trusted(render.md_escape(str(v))) if v is not None else ""
    env.filters["safe_url"] = (lambda v: render.safe_url(v)) if fmt == "html" else \
        (lambda v: Trusted(render.safe_url(v)))
    return env


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit("\n", 1)[0] + "\n\u2026"


def describe(exc: jinja2.TemplateError) -> str:
    """A template error in one line: what, and on which line of the template."""
    line = getattr(exc, "lineno", None)
    where = f" (template line {line})" if isinstance(exc, jinja2.TemplateSyntaxError) and line else ""
    message = exc.message or type(exc).__name__
    if isinstance(exc, jinja2.UndefinedError):
        return f"template error: {message}"
    return f"template error{where}: {message}"


# ------------------------------------------------------------------------------------------------ checking


def sample_change() -> ChangeContext:
    """A change like the ones feedwatch sends, for rendering templates in `check`."""
    diff = DocumentDiff(
        sections=(SectionDiff(("Code of Conduct", "Our Standards"), (
            DiffOp(Op.EQUAL, "This Code of Conduct "), DiffOp(Op.DELETE, "v1.2"), DiffOp(Op.INSERT, "v1.3"),
            DiffOp(Op.EQUAL, " applies within all community spaces."))),),
        inserted=("v1.3",), deleted=("v1.2",), summary="Our Standards: \u201cv1.2\u201d \u2192 \u201cv1.3\u201d")
    change = RecordedChange(
        id=1, feed="sample-feed", document_id=1, guid="https://example.org/coc/", link="https://example.org/coc/",
        title="Community: Code Of Conduct", kind=ChangeKind.CHANGED, version=2, from_version=1, revert_of=None,
        detected_at=datetime(2026, 1, 1, tzinfo=UTC), summary=diff.summary, baseline=False, diff=diff)
    return ChangeContext(change)


def sample_renders(renderer: Renderer, target: TargetSettings) -> list[tuple[str, Callable[[], Message]]]:
    """One rendering of every kind of message `target` can be sent, with the template key it uses."""
    ctx = sample_change()
    change = renderer.change_variables(ctx, target.format, target.max_length)
    text = renderer.change_variables(ctx, "text", target.max_length)
    digest = {"changes": [change], "count": 1, "feeds": [ctx.change.feed], "report_url": renderer.settings.report_url}
    text_digest = {**digest, "changes": [text]}
    alert = {"feed": "sample-feed", "feed_url": "https://example.org/feed.xml", "target": target.name,
             "error": "fetch: sample-feed: HTTP 503", "count": 3, "attempts": 3, "next_retry": "2026-01-01T00:10:00Z"}
    out: list[tuple[str, Callable[[], Message]]] = [
        ("change", lambda: renderer.message(target, "change", change, text_variables=text)),
        ("digest", lambda: renderer.message(target, "digest", digest, text_variables=text_digest))]
    for kind in ("error", "recovery", "dead", "test"):
        out.append((kind, _alert_render(renderer, target, kind, renderer.alert_variables(kind, alert))))
    return out


def _alert_render(renderer: Renderer, target: TargetSettings, kind: str,
                  variables: dict[str, Any]) -> Callable[[], Message]:
    return lambda: renderer.message(target, kind, variables)


def check_templates(settings: Settings) -> list[ConfigError]:
    """Every template of every target compiled and rendered against a sample change: the problems, each
    naming the config file, the line of the template's key and the key."""
    renderer = Renderer(settings)
    problems: dict[str, ConfigError] = {}
    for name, target in settings.targets.items():
        for kind, render_it in sample_renders(renderer, target):
            try:
                render_it()
            except TemplateProblem:
                _, title_key, body_key = KINDS[kind]
                for key in (title_key, body_key):
                    error = _key_problem(renderer, target, kind, key)
                    path = f"targets.{name}.{key}"
                    if error and path not in problems:
                        problems[path] = ConfigError(error, source=str(settings.source) if settings.source else None,
                                                     line=target.template_lines.get(key), key=path)
    return list(problems.values())


def _key_problem(renderer: Renderer, target: TargetSettings, kind: str, key: str) -> str | None:
    """What is wrong with the template under `key`, if it is that one that fails."""
    source = target.templates.get(key)
    if source is None:
        return None
    only = TargetSettings(name=target.name, urls=target.urls, format=target.format, templates={key: source},
                          max_length=target.max_length)
    for k, render_it in sample_renders(renderer, only):
        if k != kind:
            continue
        try:
            render_it()
        except TemplateProblem as exc:
            return str(exc).split(": ", 1)[1]
    return None
