"""The outbox: deliveries claimed under leases, attempts recorded per URL, never sent twice once done.

A delivery row is written in the same transaction as its change (storage.store). Here it is claimed
(``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; one ``BEGIN IMMEDIATE`` transaction on SQLite), sent
outside any transaction, and its outcome recorded while the lease still holds. A crash between sending
and recording can repeat one message at most; it can never lose one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, and_, func, insert, or_, select, text, update

from monitor import codec
from monitor.models import ChangeContext, DeliveryProblem, OutboxCounts, PendingDelivery, UrlOutcome, utcnow
from storage import blobs
from storage.leases import expire_dead_leases
from storage.rows import recorded_change
from storage.schema import Change, Delivery, DeliveryAttempt, Document, Feed, Version

CLAIM_LOCK = 0x66656564_6f757462   # "feedoutb": the PostgreSQL advisory lock delivery claims take in turn


class Outbox:
    """The deliveries table, behind what dispatch needs (``store.outbox``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(self, owner: str, *, now: datetime, lease: float, limit: int = 100, due_only: bool = True,
              after_id: int = 0) -> tuple[list[PendingDelivery], int]:
        """Lease up to `limit` pending deliveries (due ones at `now`, or all with `due_only=False`) with ids
        above `after_id`, plus the rest of any digest they went out in before; returns them and the id to
        claim after next. Leases are measured on the clock, not from `now`: a dispatch that started long ago
        must not hand out leases that have already run out."""
        clock = utcnow()
        claimable = (select(Delivery, Feed.c.name.label("feed_name"))
                     .outerjoin(Feed, Feed.c.id == Delivery.c.feed_id)
                     .where(Delivery.c.status == "pending",
                            or_(Delivery.c.lease_until.is_(None), Delivery.c.lease_until < clock)))
        query = claimable.order_by(Delivery.c.id).limit(limit)
        if due_only:
            query = query.where(Delivery.c.next_attempt_at <= now)
        if after_id:
            query = query.where(Delivery.c.id > after_id)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":   # claims one at a time, as SQLite's BEGIN IMMEDIATE makes
                # them: two workers must not each lock part of one digest and send it under its id
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK})
            expire_dead_leases(conn, Delivery, clock)
            rows = list(conn.execute(_locked(conn, query)).all())
            last_id = rows[-1].id if rows else after_id
            if messages := {r.message for r in rows if r.message}:
                # the rest of the digests these rows went out in, wherever the limit or their ids fall, due
                # or not: a digest is retried whole under its id, never in parts that would each carry it
                rows += conn.execute(_locked(conn, claimable.where(
                    Delivery.c.message.in_(sorted(messages)), Delivery.c.id.not_in([r.id for r in rows])))).all()
            if rows:
                conn.execute(update(Delivery).where(Delivery.c.id.in_([r.id for r in rows]))
                             .values(lease_owner=owner, lease_until=clock + timedelta(seconds=lease)))
        return [PendingDelivery(
            id=r.id, target=r.target, kind=r.kind, change_id=r.change_id, feed=r.feed_name,
            payload=json.loads(r.payload) if r.payload else {}, attempts=r.attempts,
            done_urls=frozenset(json.loads(r.done_urls or "[]")), created_at=r.created_at, message=r.message)
            for r in rows], last_id

    def contexts(self, change_ids: Sequence[int]) -> dict[int, ChangeContext]:
        """The changes (with stored diffs) the claimed deliveries are about."""
        out: dict[int, ChangeContext] = {}
        if not change_ids:
            return out
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Change, Document.c.guid, Document.c.link, Feed.c.name.label("feed_name"))
                .join(Document, Document.c.id == Change.c.document_id).join(Feed, Feed.c.id == Change.c.feed_id)
                .where(Change.c.id.in_(list(change_ids)))).all()
            for r in rows:
                diff = codec.diff_from_json(blobs.get(conn, r.diff_hash)) if r.diff_hash else None
                excerpt = self._excerpt(conn, r) if r.kind == "added" else None
                out[r.id] = ChangeContext(recorded_change(r, diff), excerpt)
        return out

    @staticmethod
    def _excerpt(conn: Any, change: Any, limit: int = 1200) -> str | None:
        text_hash = conn.execute(select(Version.c.text_hash).where(
            Version.c.document_id == change.document_id, Version.c.number == change.version)).scalar()
        if text_hash is None:
            return None
        text = blobs.get_text(conn, text_hash)
        return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " \u2026"

    def record(self, delivery: PendingDelivery, owner: str, *, now: datetime, outcomes: Sequence[UrlOutcome],
               urls: Sequence[str], max_attempts: int, backoff: float) -> str:
        """Store one attempt's per-URL outcomes; returns the row's new status (sent, pending or dead)."""
        done = set(delivery.done_urls) | {o.url_id for o in outcomes if o.ok}
        attempts = delivery.attempts + 1
        errors = [f"{o.masked}: {o.detail or 'failed'}" for o in outcomes if not o.ok]
        if set(urls) <= done:
            status, next_at = "sent", now
        elif attempts >= max_attempts:
            status, next_at = "dead", now
        else:
            status, next_at = "pending", now + timedelta(seconds=backoff)
        with self.engine.begin() as conn:
            conn.execute(update(Delivery).where(Delivery.c.id == delivery.id, Delivery.c.lease_owner == owner).values(
                status=status, attempts=attempts, next_attempt_at=next_at, done_urls=json.dumps(sorted(done)),
                last_error="; ".join(errors) or None, sent_at=now if status == "sent" else None,
                lease_owner=None, lease_until=None))
            if outcomes:
                conn.execute(insert(DeliveryAttempt), [
                    dict(delivery_id=delivery.id, at=now, url=o.masked, ok=o.ok, detail=o.detail)
                    for o in outcomes])
        return status

    def renew(self, owner: str, ids: Sequence[int], lease: float, *, message: str | None = None) -> set[int]:
        """Extend this owner's leases on deliveries it is about to send; returns the ids still held (a lease
        that ran out and was taken over by another worker is not renewed, and must not be sent). `message`,
        a digest's delivery id, is written on its rows in the same commit, before anything is sent."""
        now = utcnow()
        values: dict[str, Any] = {"lease_until": now + timedelta(seconds=lease)}
        if message is not None:
            values["message"] = message
        with self.engine.begin() as conn:
            held = conn.execute(
                update(Delivery).where(Delivery.c.id.in_(list(ids)), Delivery.c.lease_owner == owner,
                                       Delivery.c.lease_until >= now, Delivery.c.status == "pending")
                .values(**values).returning(Delivery.c.id))
            return {r.id for r in held}

    def release(self, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(Delivery).where(Delivery.c.lease_owner == owner)
                         .values(lease_owner=None, lease_until=None))

    def add_alert(self, *, kind: str, targets: Sequence[str], payload: dict[str, Any], now: datetime,
                  feed_id: int | None = None) -> None:
        if not targets:
            return
        with self.engine.begin() as conn:
            conn.execute(insert(Delivery), [dict(
                change_id=None, feed_id=feed_id, target=t, kind=kind, payload=json.dumps(payload),
                status="pending", attempts=0, created_at=now, next_attempt_at=now) for t in targets])

    def due(self, *, force: bool = False, now: datetime | None = None) -> int:
        """How many pending deliveries are due (all pending ones with `force`)."""
        query = select(func.count()).where(Delivery.c.status == "pending")
        if not force:
            query = query.where(Delivery.c.next_attempt_at <= (now or utcnow()))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def feed_id(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(Feed.c.id).where(Feed.c.name == name)).scalar()

    def last_sent(self, target: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(Delivery.c.sent_at)).where(
                Delivery.c.target == target, Delivery.c.status == "sent")).scalar()

    def feed_next_due(self, name: str) -> datetime | None:
        """When the feed named `name` is polled next (for an error alert's "next try")."""
        with self.engine.connect() as conn:
            return conn.execute(select(Feed.c.next_due_at).where(Feed.c.name == name)).scalar()

    def counts_by_target(self, status: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Delivery.c.target, func.count().label("n"))
                                .where(Delivery.c.status == status).group_by(Delivery.c.target)).all()
        return {r.target: r.n for r in rows}

    def pending_alert_targets(self, kind: str) -> set[tuple[str, str]]:
        """(alert target, target the alert is about) of the pending alerts of `kind`."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(Delivery.c.target, Delivery.c.payload).where(
                Delivery.c.status == "pending", Delivery.c.kind == kind)).all()
        return {(r.target, str(json.loads(r.payload or "{}").get("target"))) for r in rows}

    def requeue(self, *, targets: Sequence[str] = (), feeds: Sequence[str] = (), now: datetime) -> int:
        """Dead deliveries (to `targets`, about `feeds`; all when neither is given) pending again, due now,
        with a fresh count of attempts. URLs that accepted a delivery before are still skipped. A digest's
        id is dropped: rows queued again (perhaps some of a digest's only) go out in a digest of their own."""
        query = update(Delivery).where(Delivery.c.status == "dead")
        if targets:
            query = query.where(Delivery.c.target.in_(list(targets)))
        if feeds:
            query = query.where(Delivery.c.feed_id.in_(select(Feed.c.id).where(Feed.c.name.in_(list(feeds)))))
        with self.engine.begin() as conn:
            result = conn.execute(query.values(status="pending", attempts=0, next_attempt_at=now,
                                               lease_owner=None, lease_until=None, message=None))
        return int(result.rowcount or 0)

    def counts(self) -> OutboxCounts:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Delivery.c.status, func.count().label("n")).group_by(Delivery.c.status)).all()
            failing = conn.execute(select(func.count()).where(
                and_(Delivery.c.status == "pending", Delivery.c.attempts > 0))).scalar_one()
        by_status = {r.status: int(r.n) for r in rows}
        return OutboxCounts(pending=by_status.get("pending", 0), failing=int(failing), dead=by_status.get("dead", 0),
                            sent=by_status.get("sent", 0))

    def problems(self, limit: int = 20) -> list[DeliveryProblem]:
        """Failing and dead deliveries, newest first, for `status` (errors hold masked URLs only)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Delivery.c.id, Delivery.c.target, Delivery.c.kind, Delivery.c.status, Delivery.c.attempts,
                       Delivery.c.last_error, Delivery.c.next_attempt_at, Change.c.title)
                .outerjoin(Change, Change.c.id == Delivery.c.change_id)
                .where(or_(Delivery.c.status == "dead", and_(Delivery.c.status == "pending", Delivery.c.attempts > 0)))
                .order_by(Delivery.c.id.desc()).limit(limit)).all()
        # A dead delivery is not attempted again (until `deliveries retry`): it has no next attempt to show.
        return [DeliveryProblem(**{**r._mapping, "next_attempt_at": None if r.status == "dead" else r.next_attempt_at})
                for r in rows]


def _locked(conn: Any, query: Select[Any]) -> Select[Any]:
    """The rows locked for this transaction on PostgreSQL, skipping those another worker is claiming."""
    return query.with_for_update(skip_locked=True, of=Delivery) if conn.dialect.name == "postgresql" else query
