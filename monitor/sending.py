"""Send rendered messages through Apprise: the only module that imports apprise.

- Every URL of a target is its own Apprise instance, so each URL's outcome is known and recorded; a URL
  that accepted a delivery is skipped when the delivery is retried.
- feedwatch, not Apprise, decides how the message title reaches a service without a title field: merged
  into the body escaped for the body's format (Apprise would merge it raw).
- A message's stable delivery id travels with it: an ``X-Feedwatch-Delivery`` header for services that
  take headers (json://, xml://, form://), and the e-mail ``Message-ID``, so that a repeat after a crash
  carries the id of its first copy and a receiver or mail reader can drop it.
- E-mail is built here from Apprise's parsed URL and sent through Apprise's SMTP connection: the
  plain-text part of an html mail is feedwatch's own rendering of the same diff, not a conversion.
- URLs hold secrets: only Apprise's privacy form (``json://user:****@host``) is ever printed, logged or
  stored, and failure details are scrubbed of every part of the URL that the privacy form hides.
"""

from __future__ import annotations

import email.policy
import hashlib
import html
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

import apprise
from apprise.conversion import convert_between
from apprise.plugins.email import NotifyEmail
from apprise.plugins.email.base import PGP_MODE_DEFAULT
from apprise.plugins.email.smtp import AppriseSMTPController

from monitor import render
from monitor.config import Settings, TargetSettings
from monitor.models import Message, UrlOutcome
from monitor.urls import mask as mask_url
from monitor.urls import mask_tokens

FORMATS = {"text": apprise.NotifyFormat.TEXT, "markdown": apprise.NotifyFormat.MARKDOWN,
           "html": apprise.NotifyFormat.HTML}
LEVELS = {"info": apprise.NotifyType.INFO, "success": apprise.NotifyType.SUCCESS,
          "warning": apprise.NotifyType.WARNING, "failure": apprise.NotifyType.FAILURE}
DELIVERY_HEADER = "X-Feedwatch-Delivery"


# ------------------------------------------------------------------------------------------------ URLs


def url_id(url: str) -> str:
    """A stable name for a URL that does not reveal it (the outbox records which URLs accepted a row)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def privacy_url(url: str) -> str:
    """The URL as Apprise prints it with secrets masked (our own masking if Apprise does not know it)."""
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:
        plugin = None
    if not plugin:
        return mask_url(url)
    masked: str = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
    # Apprise hides what each service calls secret; a token in a generic webhook path is not among them.
    return mask_tokens(masked.split("?", 1)[0])


def scrub(text: str, url: str, masked: str) -> str:
    """Remove from `text` every piece of `url` that its privacy form hides (passwords, tokens)."""
    split = re.compile(r"[/:@?&=#,.]+")
    visible = set(split.split(masked))
    for piece in sorted(set(split.split(url)) - visible, key=len, reverse=True):
        if len(piece) >= 4:
            text = text.replace(piece, "****")
    return text.replace(url, masked)


def check_urls(settings: Settings) -> list[str]:
    """Problems with the configured targets (URLs Apprise does not understand, missing config files)."""
    problems = []
    for name, target in settings.targets.items():
        for i, url in enumerate(target.urls):
            if not apprise.Apprise.instantiate(url, suppress_exceptions=True):
                problems.append(f"targets.{name}.urls[{i}]: Apprise does not understand {mask_url(url)}")
        if target.config_file and not target.config_file.is_file():
            problems.append(f"targets.{name}.config: no such file {target.config_file}")
    return problems


def target_keys(target: TargetSettings) -> list[str]:
    """The URL ids a delivery to `target` must collect to be sent."""
    keys = [url_id(u) for u in target.urls]
    return keys + ([url_id(f"config:{target.config_file}")] if target.config_file else [])


# ------------------------------------------------------------------------------------------------ sending


@contextmanager
def _apprise_log() -> Iterator[list[str]]:
    """Collect Apprise's warnings during one send (its only account of why a send failed)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def send(target: TargetSettings, message: Message, *, skip: frozenset[str] = frozenset()) -> list[UrlOutcome]:
    """Send `message` to every URL of `target` not in `skip`; one outcome per URL tried."""
    outcomes = []
    units: list[tuple[str, str, Any]] = [(url, privacy_url(url), url) for url in target.urls]
    if target.config_file:
        units.append((f"config:{target.config_file}", f"config file {target.config_file}", target.config_file))
    for key, masked, source in units:
        uid = url_id(key)
        if uid in skip:
            continue
        outcomes.append(_send_one(uid, masked, source, key, message))
    return outcomes


def _send_one(uid: str, masked: str, source: Any, key: str, message: Message) -> UrlOutcome:
    ap = apprise.Apprise()
    if isinstance(source, Path):
        config = apprise.AppriseConfig()
        added = config.add(str(source)) and ap.add(config)
    else:
        added = ap.add(source)
    if not added or len(ap) == 0:
        return UrlOutcome(uid, masked, False, "Apprise does not understand this URL")
    with _apprise_log() as logs:
        try:
            results = [_notify(plugin, message) for plugin in ap]
            ok = all(results)
        except Exception as exc:
            ok, logs[:] = False, [f"{type(exc).__name__}: {exc}"]
    detail = None if ok else scrub("; ".join(logs[-2:]) or "failed", key, masked)
    return UrlOutcome(uid, masked, ok, detail)


def _notify(plugin: Any, message: Message) -> bool:
    # Plain SMTP mail is built here; PGP mail and protocols on top of e-mail (Delta Chat) stay Apprise's.
    if type(plugin) is NotifyEmail and plugin.pgp_mode == PGP_MODE_DEFAULT:
        return _send_mail(plugin, message)
    title, body = message.title, message.body
    if plugin.title_maxlen <= 0 and title:     # no title field: merged here, escaped for the format
        body, title = _title_in_body(title, body, message.format), ""
    headers = getattr(plugin, "headers", None)
    if message.delivery_id and isinstance(headers, dict):
        headers[DELIVERY_HEADER] = message.delivery_id
    return bool(plugin.notify(title=title, body=body, body_format=FORMATS[message.format],
                              notify_type=LEVELS[message.level]))


def _title_in_body(title: str, body: str, fmt: str) -> str:
    if fmt == "markdown":
        return f"**{render.md_escape(title)}**\n\n{body}"
    if fmt == "html":
        return f"<p><b>{html.escape(title)}</b></p>\n{body}"
    return f"{title}\n\n{body}"


# ------------------------------------------------------------------------------------------------ e-mail


def message_id(delivery_id: str, sender: str) -> str:
    """The Message-ID of every copy of one delivery (a mail reader shows a repeat once)."""
    domain = sender.rsplit("@", 1)[-1] or "feedwatch.invalid"
    return f"<{delivery_id}@{domain}>"


def _send_mail(plugin: Any, message: Message) -> bool:
    """One mail per recipient, built from Apprise's parsed URL and sent over its SMTP connection."""
    if not plugin.targets:
        logging.getLogger("apprise").warning("There are no Email recipients to notify")
        return False
    sender = str(plugin.from_addr[1])
    ok = True
    with AppriseSMTPController(host=plugin.smtp_host, port=plugin.port, secure_mode=plugin.secure_mode,
                               user=plugin.user, password=plugin.password,
                               verify_certificate=plugin.verify_certificate,
                               socket_connect_timeout=plugin.socket_connect_timeout) as smtp:
        for name, address in plugin.targets:
            mail = _mail(plugin, message, sender, (name or "", address))
            recipients = [address, *plugin.cc, *plugin.bcc]
            if not smtp.sendmail(sender, recipients, mail.as_string(policy=email.policy.SMTP)):
                logging.getLogger("apprise").warning('Sending email to "%s" failed.', address)
                ok = False
    return ok


def _mail(plugin: Any, message: Message, sender: str, to: tuple[str, str]) -> EmailMessage:
    mail = EmailMessage()
    for header, value in {"X-Application": plugin.app_id, **plugin.headers}.items():
        mail[header] = value
    mail["Subject"] = message.title
    mail["From"] = formataddr((plugin.from_addr[0] or "", sender))
    mail["To"] = formataddr(to)
    if plugin.cc:
        mail["Cc"] = ", ".join(sorted(plugin.cc))
    if plugin.reply_to:
        mail["Reply-To"] = ", ".join(sorted(plugin.reply_to))
    mail["Date"] = format_datetime(datetime.now().astimezone())
    if message.delivery_id:
        mail["Message-ID"] = message_id(message.delivery_id, sender)
        mail[DELIVERY_HEADER] = message.delivery_id
    if message.format == "text":
        mail.set_content(message.body)
        return mail
    body = message.body if message.format == "html" else str(convert_between(  # type: ignore[no-untyped-call]
        apprise.NotifyFormat.MARKDOWN, apprise.NotifyFormat.HTML, message.body))
    mail.set_content(message.text if message.text is not None else message.body)
    mail.add_alternative(body, subtype="html")
    return mail
