"""Leases of dead processes: a `run` killed with -9 leaves its feeds and deliveries leased until they expire,
unless a process of the same host sees that the owner's pid is gone (storage.db.owner_id: "host:pid")."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from storage.db import worker_host
from storage.rows import chunks


def expire_dead_leases(conn: Connection, table: Any, now: datetime) -> None:
    """Free the leases on `table` (feeds or deliveries) held by processes of this host that no longer exist."""
    host = worker_host()
    rows = conn.execute(select(table.c.id, table.c.lease_owner).where(
        table.c.lease_owner.like(f"{host}:%"), table.c.lease_until > now)).all()
    dead = [r.id for r in rows if not _pid_alive(r.lease_owner)]
    for chunk in chunks(dead):
        conn.execute(update(table).where(table.c.id.in_(chunk)).values(lease_owner=None, lease_until=None))


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
