"""DocumentDiff <-> JSON: the stored form of a diff and the `diff --format json` shape (DESIGN §3)."""

from __future__ import annotations

import json
from typing import Any

from monitor.models import DiffOp, DocumentDiff, Move, Op, SectionDiff


def diff_to_dict(diff: DocumentDiff) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sections": [{"path": list(s.path), "ops": [[o.op, o.text] for o in s.ops]} for s in diff.sections],
        "moves": [{"text": m.text, "from": list(m.source), "to": list(m.target),
                   **({"ops": [[o.op, o.text] for o in m.edits]} if m.edits else {})} for m in diff.moves],
        "summary": diff.summary,
    }
    if diff.title:
        out["title"] = {"from": diff.title[0], "to": diff.title[1]}
    if diff.link:
        out["link"] = {"from": diff.link[0], "to": diff.link[1]}
    if diff.coarse:
        out["coarse"] = True
    out["inserted"] = list(diff.inserted)
    out["deleted"] = list(diff.deleted)
    return out


def diff_from_dict(d: dict[str, Any]) -> DocumentDiff:
    title = (d["title"]["from"], d["title"]["to"]) if d.get("title") else None
    link = (d["link"]["from"], d["link"]["to"]) if d.get("link") else None
    return DocumentDiff(
        sections=tuple(SectionDiff(tuple(s["path"]), tuple(DiffOp(Op(o), t) for o, t in s["ops"]))
                       for s in d.get("sections", ())),
        moves=tuple(Move(m["text"], tuple(m["from"]), tuple(m["to"]),
                         tuple(DiffOp(Op(o), t) for o, t in m.get("ops", ()))) for m in d.get("moves", ())),
        title=title, link=link, inserted=tuple(d.get("inserted", ())), deleted=tuple(d.get("deleted", ())),
        summary=d.get("summary", ""), coarse=bool(d.get("coarse")),
    )


def diff_to_json(diff: DocumentDiff) -> bytes:
    return json.dumps(diff_to_dict(diff), ensure_ascii=False, separators=(",", ":")).encode()


def diff_from_json(data: bytes) -> DocumentDiff:
    return diff_from_dict(json.loads(data))
