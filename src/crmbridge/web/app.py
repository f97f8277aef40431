"""The dashboard, its JSON API, /metrics and /healthz as one Starlette app over a state store and the runner status.

Reads go to the state store in a worker thread, so a slow query never stalls the runner sharing the event loop.
Writes (retry, drop) pass :func:`crmbridge.web.security.check_write` first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from crmbridge.config import CrmbridgeConfig
from crmbridge.state import ConflictRecord, DeadLetter, DeadLetterStatus, StateInfo, StateStore
from crmbridge.web.json_views import conflict_json, health_json, letter_json, next_letter_status, status_json
from crmbridge.web.metrics import Metrics
from crmbridge.web.page import CONTENT_SECURITY_POLICY
from crmbridge.web.render import Access, DashboardView, render_dashboard, render_dead_letter_page, render_message_page
from crmbridge.web.security import (
    AUTH_COOKIE,
    SESSION_COOKIE,
    WriteCheck,
    check_write,
    csrf_token,
    is_cross_site,
    new_session_id,
    unlock_proof,
)
from crmbridge.web.status import RunnerStatus, StatusSource

__all__ = ["create_web_app"]

_LETTERS_SHOWN = 200
_CONFLICTS_SHOWN = 50
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it Chromium sends `Origin: null` on our own form posts, which look cross-site then.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_LOCAL_HOSTS = ("127.0.0.1", "localhost")
_ACTIONS = ("retry", "drop")
DashboardData = tuple[RunnerStatus, StateInfo, list[DeadLetter], list[ConflictRecord]]


class _Dashboard:
    """The request handlers; one instance per app, holding what they read from."""

    def __init__(
        self,
        store: StateStore,
        status: StatusSource,
        metrics: Metrics,
        config: CrmbridgeConfig | None,
        token: str | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.status = status
        self.metrics = metrics
        self.config = config
        self.token = token
        self.clock = clock

    # --- sessions and access ------------------------------------------------------------------------------------

    def _access(self, session_id: str, cookies: dict[str, str]) -> Access:
        if not self.token:
            return Access("disabled")
        csrf = csrf_token(self.token, session_id)
        unlocked = cookies.get(AUTH_COOKIE) == unlock_proof(self.token, session_id)
        return Access("unlocked" if unlocked else "locked", csrf)

    def _page(self, request: Request, render: Callable[[Access], str], status_code: int = 200) -> HTMLResponse:
        """Render with the viewer's access, starting a session (cookie) for a first visit."""
        session_id = request.cookies.get(SESSION_COOKIE) or new_session_id()
        response = HTMLResponse(render(self._access(session_id, request.cookies)), status_code, _PAGE_HEADERS)
        if request.cookies.get(SESSION_COOKIE) != session_id:
            _set_cookie(response, SESSION_COOKIE, session_id)
        return response

    async def _check(self, request: Request) -> tuple[WriteCheck, dict[str, str]]:
        form: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            parsed = await request.form()
            form = {key: value for key, value in parsed.items() if isinstance(value, str)}
        return check_write(self.token, request.headers, request.cookies, form), form

    def _refused(self, request: Request, reason: str, *, as_json: bool) -> Response:
        if as_json:
            return JSONResponse({"error": reason}, 403)
        return self._page(request, lambda access: render_message_page("Refused", reason, access), 403)

    # --- pages ----------------------------------------------------------------------------------------------------

    async def dashboard(self, request: Request) -> Response:
        view_data = await run_in_threadpool(self._read_dashboard)
        now = self.clock()

        def render(access: Access) -> str:
            status, info, letters, conflicts = view_data
            return render_dashboard(DashboardView(status, info, letters, conflicts, self.config, access, now))

        return self._page(request, render)

    def _read_dashboard(self) -> DashboardData:
        letters = self.store.dead_letters.list(status=DeadLetterStatus.OPEN, limit=_LETTERS_SHOWN)
        letters += self.store.dead_letters.list(status=DeadLetterStatus.RETRYING, limit=_LETTERS_SHOWN)
        letters.sort(key=lambda letter: letter.id or 0)
        conflicts = self.store.conflicts(limit=_CONFLICTS_SHOWN)
        return self.status.status(), self.store.info(), letters, conflicts

    async def letter_page(self, request: Request) -> Response:
        letter = await run_in_threadpool(self.store.dead_letters.get, request.path_params["letter_id"])
        now = self.clock()
        if letter is None:
            message = f"There is no dead letter #{request.path_params['letter_id']}."
            return self._page(request, lambda access: render_message_page("Not found", message, access), 404)
        return self._page(request, lambda access: render_dead_letter_page(letter, access, now))

    async def letter_action(self, request: Request) -> Response:
        as_json = request.url.path.startswith("/api/")
        if request.path_params["action"] not in _ACTIONS:
            return JSONResponse({"error": "actions are retry and drop"}, 404)
        check, form = await self._check(request)
        if not check.allowed:
            return self._refused(request, check.reason, as_json=as_json)
        letter_id: int = request.path_params["letter_id"]
        action: str = request.path_params["action"]
        letter = await run_in_threadpool(self.store.dead_letters.get, letter_id)
        if letter is None:
            return (
                JSONResponse({"error": f"no dead letter #{letter_id}"}, 404)
                if as_json
                else self._missing(request, letter_id)
            )
        target = next_letter_status(letter.status, action)
        if target is None:
            reason = f"dead letter #{letter_id} is {letter.status.value}: nothing to {action}"
            return (
                JSONResponse({"error": reason}, 409)
                if as_json
                else self._page(request, lambda access: render_message_page("Nothing to do", reason, access), 409)
            )
        await run_in_threadpool(self.store.dead_letters.mark, [letter_id], target)
        if as_json:
            updated = await run_in_threadpool(self.store.dead_letters.get, letter_id)
            return JSONResponse(letter_json(updated) if updated is not None else {"id": letter_id})
        # Only two fixed places to go back to: a form field never becomes a URL (no open redirect).
        back = f"/dead-letters/{letter_id}" if form.get("back") == "letter" else "/#dead-letters"
        return RedirectResponse(back, status_code=303)

    def _missing(self, request: Request, letter_id: int) -> Response:
        message = f"There is no dead letter #{letter_id}."
        return self._page(request, lambda access: render_message_page("Not found", message, access), 404)

    async def unlock(self, request: Request) -> Response:
        check, _ = await self._check(request)
        session_id = request.cookies.get(SESSION_COOKIE)
        if not check.allowed or not self.token or not session_id:
            return self._refused(request, check.reason or "refused: reload the page first", as_json=False)
        response = RedirectResponse("/", status_code=303)
        _set_cookie(response, AUTH_COOKIE, unlock_proof(self.token, session_id))
        return response

    async def lock(self, request: Request) -> Response:
        # Locking needs no token, but it is a state change all the same: a foreign site may not trigger it.
        if is_cross_site(request.headers):
            return self._refused(request, "refused: the request comes from another site", as_json=False)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(AUTH_COOKIE, path="/")
        return response

    # --- JSON API, metrics and health ----------------------------------------------------------------------------

    async def api_status(self, request: Request) -> Response:
        info = await run_in_threadpool(self.store.info)
        return JSONResponse(status_json(self.status.status(), info))

    async def api_letters(self, request: Request) -> Response:
        wanted = request.query_params.get("status", DeadLetterStatus.OPEN.value)
        try:
            status = None if wanted == "all" else DeadLetterStatus(wanted)
        except ValueError:
            choices = ", ".join([*(s.value for s in DeadLetterStatus), "all"])
            return JSONResponse({"error": f"status must be one of {choices}"}, 400)
        letters = await run_in_threadpool(lambda: self.store.dead_letters.list(status=status, limit=_LETTERS_SHOWN))
        return JSONResponse({"dead_letters": [letter_json(letter) for letter in letters]})

    async def api_letter(self, request: Request) -> Response:
        letter = await run_in_threadpool(self.store.dead_letters.get, request.path_params["letter_id"])
        if letter is None:
            return JSONResponse({"error": f"no dead letter #{request.path_params['letter_id']}"}, 404)
        return JSONResponse(letter_json(letter))

    async def api_conflicts(self, request: Request) -> Response:
        conflicts = await run_in_threadpool(lambda: self.store.conflicts(limit=_CONFLICTS_SHOWN))
        return JSONResponse({"conflicts": [conflict_json(conflict) for conflict in conflicts]})

    async def metrics_text(self, request: Request) -> Response:
        info = await run_in_threadpool(self.store.info)
        self.metrics.observe_status(self.status.status())
        self.metrics.observe_state(info)
        return Response(self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: Request) -> Response:
        status_code, body = health_json(self.status.status())
        return JSONResponse(body, status_code, headers={"Cache-Control": "no-store"})


def _set_cookie(response: Response, name: str, value: str) -> None:
    # HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it along.
    response.set_cookie(name, value, path="/", httponly=True, samesite="strict")


def _default_hosts(config: CrmbridgeConfig | None) -> list[str]:
    """Host headers accepted: loopback names when bound to loopback (refuses DNS rebinding), anything otherwise."""
    bind = config.service.host if config is not None else "127.0.0.1"
    # Starlette's host check cannot parse a bracketed IPv6 Host header, so an ::1 bind accepts any name.
    return list(_LOCAL_HOSTS) if bind in _LOCAL_HOSTS else ["*"]


def create_web_app(
    store: StateStore,
    status: StatusSource,
    metrics: Metrics,
    config: CrmbridgeConfig | None,
    *,
    token: str | None,
    allowed_hosts: Sequence[str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    """The web app. ``token`` enables write actions; when None, ``config.service.dashboard_token`` is used if set.

    ``allowed_hosts`` defaults to 127.0.0.1 and localhost when the configured bind address is loopback.
    """
    if token is None and config is not None and config.service.dashboard_token is not None:
        token = config.service.dashboard_token.get_secret_value()
    web = _Dashboard(store, status, metrics, config, token or None, clock)
    routes = [
        Route("/", web.dashboard, methods=["GET"]),
        Route("/dead-letters/{letter_id:int}", web.letter_page, methods=["GET"]),
        Route("/dead-letters/{letter_id:int}/{action:str}", web.letter_action, methods=["POST"]),
        Route("/session", web.unlock, methods=["POST"]),
        Route("/session/lock", web.lock, methods=["POST"]),
        Route("/api/status", web.api_status, methods=["GET"]),
        Route("/api/dead-letters", web.api_letters, methods=["GET"]),
        Route("/api/dead-letters/{letter_id:int}", web.api_letter, methods=["GET"]),
        Route("/api/dead-letters/{letter_id:int}/{action:str}", web.letter_action, methods=["POST"]),
        Route("/api/conflicts", web.api_conflicts, methods=["GET"]),
        Route("/metrics", web.metrics_text, methods=["GET"]),
        Route("/healthz", web.healthz, methods=["GET"]),
    ]
    hosts = list(allowed_hosts) if allowed_hosts is not None else _default_hosts(config)
    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
    app.state.dashboard = web  # `crmbridge run` swaps its `config` after a reload
    return app
