"""Leases of dead processes: a `run` killed with -9 leaves its feeds and deliveries leased until they expire,
unless a process of the same host sees that the owner's pid is gone (storage.db.owner_id: "host:pid")."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from storage.db import worker_host


def expire_dead_leases(conn: Connection, table: Any, now: datetime) -> None:
    """Free the leases on `table` (feeds or deliveries) held by processes of this host that no longer exist."""
    held = (table.c.lease_owner.like(f"{worker_host()}:%"), table.c.lease_until > now)
    # The owners, not the rows: a claim runs this while its own process holds hundreds of leases.
    owners: list[str] = list(conn.execute(select(table.c.lease_owner).distinct().where(*held)).scalars())
    dead = [owner for owner in owners if not _pid_alive(owner)]
    if dead:
        conn.execute(update(table).where(table.c.lease_owner.in_(dead), *held).values(lease_owner=None,
                                                                                      lease_until=None))


def _pid_alive(owner: str | None) -> bool:
    try:
        pid = int((owner or "").rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
