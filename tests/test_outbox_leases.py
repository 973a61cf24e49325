"""Outbox leases: a delivery is sent by the worker that holds it, never by one whose lease ran out.

A dispatch claims a batch and sends it one message at a time. Under load a batch can outlive its lease and
another worker may take rows over; the first worker must then leave those rows alone (it renews each
lease right before sending, and a lease that is no longer its own is not renewed).
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import insert, select, update

from monitor.models import Alert, PollRecord, PollStatus, utcnow
from storage.schema import Delivery
from storage.store import Store


def pending_alert(store: Store) -> int:
    """One pending outbox row (an error alert), written the way a poll writes it."""
    [feed_id] = store.sync_feeds([("a", "http://127.0.0.1:9/a.xml")]).values()
    assert store.claim_due_feeds([feed_id], "poller:1", limit=1, lease=60)
    store.record_poll(PollRecord(feed_id=feed_id, feed="a", owner="poller:1", now=utcnow(),
                                 status=PollStatus.ERROR, next_due_at=utcnow() + timedelta(hours=1), error="boom",
                                 alerts=(Alert("error", ("chat",), '{"feed": "a", "error": "boom"}'),)))
    with store.engine.connect() as conn:
        return int(conn.execute(select(Delivery.c.id)).scalar_one())


def test_a_lease_taken_over_is_not_renewed_and_not_sent_twice(database_url: str) -> None:
    with Store.open(database_url) as store:
        delivery = pending_alert(store)
        outbox = store.outbox
        [claimed], _ = outbox.claim("worker-a:1", now=utcnow(), lease=0.05)
        assert claimed.id == delivery
        assert outbox.renew("worker-a:1", [delivery], 0.05) == {delivery}      # still ours
        time.sleep(0.2)                                                         # ... and now it ran out
        [taken], _ = outbox.claim("worker-b:1", now=utcnow(), lease=60)
        assert taken.id == delivery
        assert outbox.renew("worker-a:1", [delivery], 60) == set()              # A must not send it
        assert outbox.renew("worker-b:1", [delivery], 60) == {delivery}


def test_a_claim_made_late_in_a_long_dispatch_gets_a_full_lease(database_url: str) -> None:
    with Store.open(database_url) as store:
        delivery = pending_alert(store)
        started = utcnow() - timedelta(minutes=10)          # the dispatch began ten minutes ago
        [claimed], _ = store.outbox.claim("worker-a:1", now=started, lease=60, due_only=False)
        assert claimed.id == delivery
        with store.engine.connect() as conn:
            until = conn.execute(select(Delivery.c.lease_until)).scalar_one()
        assert until > utcnow() + timedelta(seconds=50)
        assert store.outbox.claim("worker-b:1", now=utcnow(), lease=60)[0] == []   # it is held


def test_a_digest_tried_before_is_claimed_whole_past_the_batch_limit(database_url: str) -> None:
    """A digest's rows carry its delivery id; a claim that gets one of them gets them all, due or not and
    however far apart their ids are, so no part of the digest is sent under its id without the rest."""
    with Store.open(database_url) as store:
        first = pending_alert(store)
        with store.engine.begin() as conn:
            row = {k: v for k, v in conn.execute(select(Delivery)).one()._asdict().items() if k != "id"}
            conn.execute(insert(Delivery), [row, row, {**row, "next_attempt_at": utcnow() + timedelta(hours=1)}])
            conn.execute(update(Delivery).where(Delivery.c.id.in_([first, first + 3]))
                         .values(message="feedwatch-0123456789abcdef01234567"))
        batch, last = store.outbox.claim("worker-a:1", now=utcnow(), lease=60, limit=2)
        assert [d.id for d in batch] == [first, first + 1, first + 3] and last == first + 1
        assert {d.message for d in batch} == {"feedwatch-0123456789abcdef01234567", None}
        batch, last = store.outbox.claim("worker-a:1", now=utcnow(), lease=60, limit=2, after_id=last)
        assert [d.id for d in batch] == [first + 2] and last == first + 2


def test_deliveries_queued_again_leave_their_digest_behind(database_url: str) -> None:
    """`deliveries retry --feed X` may queue only some rows of a dead digest: sent under the digest's id,
    a receiver that drops repeats would drop the rest when they follow. They form a new digest instead."""
    with Store.open(database_url) as store:
        delivery = pending_alert(store)
        with store.engine.begin() as conn:
            conn.execute(update(Delivery).values(status="dead", message="feedwatch-0123456789abcdef01234567"))
        assert store.outbox.requeue(now=utcnow()) == 1
        [claimed], _ = store.outbox.claim("worker-a:1", now=utcnow(), lease=60)
        assert claimed.id == delivery and claimed.message is None
