"""A request id for every request, and one log line per request.

The id comes from the `X-Request-ID` header (set by a load balancer or a caller that
wants to correlate) when it is sane, else it is generated; it is echoed back and put
in `core.logs.request_id`, so every log line of the request carries it with the tenant.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from core import logs

log = logging.getLogger("powerbuyer.request")

HEADER = "X-Request-ID"
# A caller's id goes into every log line: accept only what cannot forge or break one.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _incoming_id() -> str:
    supplied = request.headers.get(HEADER, "")
    return supplied if _SANE_ID.match(supplied) else uuid.uuid4().hex


def _start() -> None:
    g.request_id = _incoming_id()
    g.request_started = time.perf_counter()
    g.request_id_token = logs.request_id.set(g.request_id)


def _finish(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:
        return response
    response.headers[HEADER] = request_id
    elapsed_ms = (time.perf_counter() - g.request_started) * 1000
    # The route's pattern, not the path: paths carry one-time tokens (invitations,
    # password resets) and ids, query strings tokens or personal data.
    route = request.url_rule.rule if request.url_rule else "(no route)"
    log.info("%s %s %s %.1fms", request.method, route, response.status_code, elapsed_ms)
    return response


def _release(exc: BaseException | None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        logs.request_id.reset(token)


def init_app(app: Flask) -> None:
    # Ahead of the tenant resolver, so that a request it refuses (unknown host, suspended
    # tenant) is still logged with its id. Setting an id touches no tenant data.
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.teardown_request(_release)
