"""HTML of the dashboard sections, from plain values to escaped text: no I/O, so every piece is testable alone.

Everything that came from the state store, the runner or the configuration is escaped by :func:`text`; free text
that may quote a request (error messages, payloads) also has secrets masked first by :func:`message`. Identifiers
and names are not masked: a registered secret that happens to be a common word must not blank out the page.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from crmbridge.config import CrmbridgeConfig
from crmbridge.redaction import redact
from crmbridge.state import ConflictRecord, DeadLetter, DeadLetterStatus, StateInfo
from crmbridge.state.report import describe_age
from crmbridge.web.config_view import render_config
from crmbridge.web.page import PAGE, REFRESH_SECONDS
from crmbridge.web.status import FlowStatus, RunnerStatus

__all__ = [
    "Access",
    "DashboardView",
    "message",
    "render_dashboard",
    "render_dead_letter_page",
    "render_message_page",
    "text",
]

AccessMode = Literal["disabled", "locked", "unlocked"]

_STATE_BADGE = {"running": "b-info", "idle": "b-ok", "failed": "b-bad", "paused": "b-warn"}
_LETTER_BADGE = {"open": "b-bad", "retrying": "b-info", "dropped": "b-muted", "resolved": "b-ok"}
_COUNT_ORDER = ("read", "written", "skipped", "failed")
_COUNTS_HIDDEN = frozenset({"pages"})  # how the source paged: no news for an operator
_PAYLOAD_PREVIEW = 90


@dataclass(frozen=True, slots=True)
class Access:
    """What the viewer may do: nothing (no token configured), unlock with the token, or act (CSRF token given)."""

    mode: AccessMode
    csrf_token: str = ""


@dataclass(frozen=True, slots=True)
class DashboardView:
    status: RunnerStatus
    info: StateInfo
    letters: list[DeadLetter]
    conflicts: list[ConflictRecord]
    config: CrmbridgeConfig | None
    access: Access
    now: datetime
    notices: list[str] = field(default_factory=list)


def text(value: object) -> str:
    """Any value as page text, HTML escaped."""
    return html.escape(str(value), quote=True)


def message(value: object) -> str:
    """Free text (errors, reasons, payloads) as page text: secrets masked, then HTML escaped."""
    return html.escape(redact(str(value)), quote=True)


def _badge(label: str, css: str) -> str:
    return f'<span class="badge {css}">{text(label)}</span>'


def _moment(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return '<span class="muted">never</span>'
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<span title="{text(stamp)}">{text(describe_age(moment, now))}</span>'


def _until(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return '<span class="muted">—</span>'
    seconds = int((moment - now).total_seconds())
    if seconds <= 0:
        return "due"
    return text(f"in {_duration(seconds)}")


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s"
    if whole < 86_400:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86_400}d {whole % 86_400 // 3600}h"


def _maybe(value: int | float | None, render: str | None = None) -> str:
    if value is None:
        return '<span class="muted">—</span>'
    return text(render if render is not None else f"{value:,}")


def _counts(counts: Mapping[str, int]) -> str:
    """The main counts always, the others only when not zero: an idle pass reads as one short line."""
    if not counts:
        return '<span class="muted">—</span>'
    extra = sorted(key for key in set(counts) - set(_COUNT_ORDER) - _COUNTS_HIDDEN if counts[key])
    keys = [key for key in _COUNT_ORDER if key in counts] + extra
    if not keys:
        return '<span class="muted">nothing changed</span>'
    parts = []
    for key in keys:
        css = "error" if key == "failed" and counts[key] else ""
        parts.append(f'<span class="{css}">{text(key.replace("_", " "))} <b>{counts[key]:,}</b></span>')
    return " · ".join(parts)


def _section(title: str, body: str, *, count: int | None = None, anchor: str = "") -> str:
    counter = f'<span class="count">{count}</span>' if count is not None else ""
    anchor_attr = f' id="{anchor}"' if anchor else ""
    return f"<section{anchor_attr}><h2>{text(title)}{counter}</h2>{body}</section>"


def _table(headers: Iterable[str], rows: list[str], *, empty: str) -> str:
    if not rows:
        return f'<p class="empty">{text(empty)}</p>'
    head = "".join(f"<th>{text(header)}</th>" for header in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _flow_row(flow: FlowStatus, now: datetime) -> str:
    lag = _maybe(flow.lag_seconds, _duration(flow.lag_seconds) if flow.lag_seconds is not None else None)
    error = f'<div class="error">{message(flow.last_error)}</div>' if flow.last_error else ""
    return (
        f'<tr data-flow="{text(flow.name)}"><td><b>{text(flow.name)}</b><div class="muted">{text(flow.kind)}</div></td>'
        f"<td>{_badge(flow.state, _STATE_BADGE.get(flow.state, 'b-muted'))}</td>"
        f"<td>{_moment(flow.last_pass_at, now)}</td><td>{_counts(flow.last_counts)}{error}</td>"
        f'<td class="num">{_maybe(flow.backlog)}</td><td class="num">{lag}</td>'
        f"<td>{_until(flow.next_run_at, now)}</td></tr>"
    )


def _flows(status: RunnerStatus, now: datetime) -> str:
    rows = [_flow_row(flow, now) for flow in status.flows]
    headers = ("flow", "state", "last pass", "last pass counts", "backlog", "lag", "next run")
    return _section("Flows", _table(headers, rows, empty="No flows reported by the runner yet."), anchor="flows")


def _stored_state(info: StateInfo, now: datetime) -> str:
    rows = []
    for scope in info.scopes:
        last_run = '<span class="muted">never</span>'
        if scope.last_run_status is not None:
            last_run = f"{text(scope.last_run_status)}, {_moment(scope.last_run_started_at, now)}"
        in_flight = ' <span class="muted">(page in flight)</span>' if scope.in_flight else ""
        rows.append(
            f"<tr><td>{text(scope.flow)}</td><td>{text(scope.scope)}</td>"
            f"<td>{_moment(scope.checkpoint_updated_at, now)}{in_flight}</td>"
            f'<td class="num">{scope.links:,}</td><td class="num">{scope.pending:,}</td>'
            f'<td class="num">{scope.dead_letters_open:,}</td><td class="num">{scope.conflicts:,}</td>'
            f"<td>{last_run}</td></tr>"
        )
    headers = ("flow", "scope", "checkpoint", "linked", "parked", "open dead letters", "conflicts", "last run")
    body = _table(headers, rows, empty="The state store is empty: nothing has been synced yet.")
    footer = (
        f'<p class="muted">{text(info.backend)} store · {info.ledger_events:,} events in the ledger · '
        f"{info.unmatched_events:,} unmatched events</p>"
    )
    return _section("Stored state", body + footer, anchor="state")


def _payload(payload: Mapping[str, object] | None, *, preview: bool) -> str:
    if payload is None:
        return '<span class="muted">purged</span>'
    full = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if not preview:
        return f"<pre>{message(full)}</pre>"
    short = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
    if len(short) > _PAYLOAD_PREVIEW:
        short = short[:_PAYLOAD_PREVIEW] + "…"
    return f"<details><summary><code>{message(short)}</code></summary><pre>{message(full)}</pre></details>"


def _action(letter: DeadLetter, action: Literal["retry", "drop"], access: Access, back: str) -> str:
    label, css = ("Retry", "primary") if action == "retry" else ("Drop", "danger")
    if access.mode != "unlocked":
        why = "set service.dashboard_token to enable" if access.mode == "disabled" else "give the dashboard token first"
        return f'<button class="{css}" disabled title="{text(why)}">{label}</button>'
    return (
        f'<form class="inline" method="post" action="/dead-letters/{letter.id}/{action}">'
        f'<input type="hidden" name="csrf_token" value="{text(access.csrf_token)}">'
        f'<input type="hidden" name="back" value="{back}">'
        f'<button class="{css}" type="submit" data-action="{action}-{letter.id}">{label}</button></form>'
    )


def _letter_actions(letter: DeadLetter, access: Access, back: str = "dashboard") -> str:
    """Retry and Drop where they apply; ``back`` says where the app returns after the action (dashboard or letter)."""
    actions = []
    if letter.status in (DeadLetterStatus.OPEN, DeadLetterStatus.DROPPED):
        actions.append(_action(letter, "retry", access, back))
    if letter.status in (DeadLetterStatus.OPEN, DeadLetterStatus.RETRYING):
        actions.append(_action(letter, "drop", access, back))
    return " ".join(actions)


def _letter_row(letter: DeadLetter, access: Access, now: datetime) -> str:
    status = letter.status.value
    return (
        f'<tr data-letter="{letter.id}"><td><a href="/dead-letters/{letter.id}">#{letter.id}</a></td>'
        f'<td>{text(letter.flow.value)}<div class="muted">{text(letter.mapping)}</div></td>'
        f"<td><code>{text(letter.record_key)}</code></td>"
        f'<td class="reason"><b>{text(letter.error_class)}</b><div class="error">{message(letter.reason)}</div></td>'
        f'<td class="payload">{_payload(letter.payload, preview=True)}</td>'
        f'<td class="num">{letter.attempts}</td><td>{_moment(letter.failed_at, now)}</td>'
        f'<td class="letter-status">{_badge(status, _LETTER_BADGE.get(status, "b-muted"))}</td>'
        f'<td class="actions">{_letter_actions(letter, access)}</td></tr>'
    )


def _dead_letters(letters: list[DeadLetter], open_total: int, access: Access, now: datetime) -> str:
    rows = [_letter_row(letter, access, now) for letter in letters]
    headers = ("id", "flow", "record", "reason", "payload", "attempts", "last failed", "status", "")
    body = _table(headers, rows, empty="No open dead letters: every record was accepted.")
    shown_open = sum(1 for letter in letters if letter.status is DeadLetterStatus.OPEN)
    more = (
        f"Showing {shown_open} of {open_total:,} open dead letters (oldest first). " if open_total > shown_open else ""
    )
    note = (
        f'<p class="muted">{text(more)}Retry hands the record back to the runner, which re-reads the source row '
        "before writing. Drop gives up on it.</p>"
    )
    return _section("Dead letters", body + note, count=len(letters), anchor="dead-letters")


def _flag(value: bool, changed_at: datetime | None, now: datetime) -> str:
    badge = _badge("opted out" if value else "opted in", "b-bad" if value else "b-ok")
    return f'{badge}<div class="muted">{_moment(changed_at, now)}</div>'


def _conflicts(conflicts: list[ConflictRecord], now: datetime) -> str:
    rows = [
        f'<tr data-conflict="{text(conflict.contact_id)}"><td>{_moment(conflict.at, now)}</td>'
        f"<td><code>{text(conflict.contact_id)}</code></td><td>{text(conflict.pair)}</td>"
        f"<td>{_flag(conflict.dynamics_value, conflict.dynamics_changed_at, now)}</td>"
        f"<td>{_flag(conflict.campaign_value, conflict.campaign_changed_at, now)}</td>"
        f"<td><b>{text(conflict.winner)}</b></td><td>{text(conflict.rule)}</td>"
        f"<td>{_badge('opted out' if conflict.resolved_value else 'opted in', 'b-muted')}</td></tr>"
        for conflict in conflicts
    ]
    headers = ("when", "contact", "pair", "Dynamics", "Campaign", "winner", "rule", "result")
    body = _table(headers, rows, empty="No opt-out conflicts: the two sides never disagreed.")
    return _section("Opt-out conflicts", body, count=len(conflicts), anchor="conflicts")


def _tiles(view: DashboardView) -> str:
    failing = len(view.status.failing)
    running = sum(1 for flow in view.status.flows if flow.state == "running")
    backlog = sum(flow.backlog or 0 for flow in view.status.flows)
    open_letters = sum(scope.dead_letters_open for scope in view.info.scopes)
    tiles = [
        ("bad" if failing else "ok", f"{failing}", "failing flows"),
        ("", f"{running}/{len(view.status.flows)}", "flows running"),
        ("warn" if backlog else "ok", f"{backlog:,}", "backlog"),
        ("bad" if open_letters else "ok", f"{open_letters}", "open dead letters"),
        ("", f"{len(view.conflicts)}", "recent conflicts"),
    ]
    cells = "".join(
        f'<div class="tile {css}"><div class="n">{text(number)}</div><div class="l">{text(label)}</div></div>'
        for css, number, label in tiles
    )
    return f'<div class="summary">{cells}</div>'


def _access_bar(access: Access) -> str:
    if access.mode == "disabled":
        return '<span class="badge b-muted">read-only: no dashboard token configured</span>'
    if access.mode == "unlocked":
        return (
            '<span class="badge b-ok">actions enabled</span>'
            '<form class="inline" method="post" action="/session/lock">'
            f'<input type="hidden" name="csrf_token" value="{text(access.csrf_token)}">'
            '<button type="submit">Lock</button></form>'
        )
    return (
        '<form class="inline" method="post" action="/session">'
        f'<input type="hidden" name="csrf_token" value="{text(access.csrf_token)}">'
        '<input type="password" name="token" placeholder="dashboard token" autocomplete="off"'
        ' aria-label="dashboard token">'
        ' <button type="submit" class="primary">Unlock actions</button></form>'
    )


def _notices(view: DashboardView) -> str:
    parts = [f'<p class="notice bad">{message(notice)}</p>' for notice in view.notices]
    if view.access.mode == "disabled":
        parts.append(
            '<p class="notice">Write actions (retry, drop) are disabled because no dashboard token is configured. '
            "Set <code>service.dashboard_token</code> (for example <code>${CRMBRIDGE_DASHBOARD_TOKEN}</code>) "
            "and restart.</p>"
        )
    return "".join(parts)


def _render_page(title: str, meta: str, access: Access, body: str) -> str:
    return PAGE.substitute(title=text(title), meta=meta, access=_access_bar(access), body=body)


def render_dashboard(view: DashboardView) -> str:
    """The whole dashboard page."""
    meta = (
        f"runner started {_moment(view.status.started_at, view.now)} · "
        f'<label><input type="checkbox" id="autorefresh" checked> refresh every {REFRESH_SECONDS}s</label>'
    )
    body = "".join(
        (
            _notices(view),
            _tiles(view),
            _flows(view.status, view.now),
            _dead_letters(view.letters, sum(s.dead_letters_open for s in view.info.scopes), view.access, view.now),
            _conflicts(view.conflicts, view.now),
            _section("Mappings in force", render_config(view.config), anchor="mappings"),
            _stored_state(view.info, view.now),
        )
    )
    return _render_page("crmbridge dashboard", meta, view.access, body)


def render_dead_letter_page(letter: DeadLetter, access: Access, now: datetime) -> str:
    """One dead letter with its full payload and its actions."""
    status = letter.status.value
    facts = [
        ("status", _badge(status, _LETTER_BADGE.get(status, "b-muted"))),
        ("flow", text(letter.flow.value)),
        ("mapping", text(letter.mapping)),
        ("record", f"<code>{text(letter.record_key)}</code>"),
        ("error class", f"<b>{text(letter.error_class)}</b>"),
        ("reason", f'<span class="error">{message(letter.reason)}</span>'),
        ("attempts", str(letter.attempts)),
        ("first failed", _moment(letter.first_failed_at, now)),
        ("last failed", _moment(letter.failed_at, now)),
        *(
            [("closed", f"{_moment(letter.closed_at, now)} — {text(letter.close_reason or '')}")]
            if letter.closed_at is not None
            else []
        ),
        ("payload", _payload(letter.payload, preview=False)),
        ("actions", _letter_actions(letter, access, back="letter") or '<span class="muted">none</span>'),
    ]
    rows = "".join(f"<tr><th>{text(name)}</th><td>{value}</td></tr>" for name, value in facts)
    body = _section(f"Dead letter #{letter.id}", f"<table>{rows}</table>")
    return _render_page(f"Dead letter #{letter.id}", '<a href="/">← dashboard</a>', access, body)


def render_message_page(title: str, text_shown: str, access: Access) -> str:
    """A short page for refusals and missing things, with a way back."""
    body = f'<p class="notice bad">{message(text_shown)}</p><p><a href="/">Back to the dashboard</a></p>'
    return _render_page(title, text(title), access, body)
