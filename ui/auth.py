"""Optional password gate.

The password comes from the environment (``XTUNER_STUDIO_PASSWORD``) or Streamlit secrets
(``password`` in ``.streamlit/secrets.toml``); without one the app is open (it listens on loopback
only, reached through an SSH tunnel). The password is never shown, logged or put in the URL.

Two layers: ``PasswordGate``, an ASGI middleware that ``serve.py`` (what ``run.sh`` starts) puts in
front of every URL Streamlit serves — pages, the websocket, ``/media/…`` downloads,
``/_stcore/metrics``; only ``/_stcore/health`` stays open — with its own small sign-in form that
sets a signed cookie and returns to the link that was asked for; and ``require_login``, checked
before any page renders, which accepts that cookie (and asks itself when the app runs without the
middleware, e.g. ``streamlit run Home.py``).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import os
import secrets
import time
from urllib.parse import parse_qs, quote, urlsplit

import streamlit as st

from ui.i18n import catalog, t

COOKIE = "xtuner_studio_auth"
LOGIN_PATH = "/_studio/login"
OPEN_PATHS = ("/_stcore/health",)
_KEY = secrets.token_bytes(32)  # per server process: a restart asks again


def _token(password: str) -> str:
    """The cookie value for ``password``: an HMAC under this process's random key."""
    return hmac.new(_KEY, hashlib.sha256(password.encode()).digest(), hashlib.sha256).hexdigest()


def cookie_ok(value: str | None, password: str) -> bool:
    return isinstance(value, str) and bool(value) and hmac.compare_digest(value, _token(password))


def expected_password() -> str | None:
    env = os.environ.get("XTUNER_STUDIO_PASSWORD")
    if env:
        return env
    try:
        value = st.secrets.get("password")
    except Exception:  # no secrets file
        value = None
    return str(value) if value else None


def require_login() -> None:
    expected = expected_password()
    if not expected or st.session_state.get("authenticated"):
        return
    if cookie_ok(st.context.cookies.get(COOKIE), expected):  # signed in through PasswordGate
        st.session_state["authenticated"] = True
        return
    st.title("XTuner Studio")
    with st.form("login"):
        given = st.text_input(t("Password"), type="password")
        submitted = st.form_submit_button(t("Sign in"), type="primary")
    if submitted:
        if hmac.compare_digest(given.encode(), expected.encode()):
            st.session_state["authenticated"] = True
            st.rerun()
        time.sleep(1.0)  # slows down guessing
        st.error(t("Wrong password."))
    st.stop()


def _cookies(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    found = {}
    for name, value in headers:
        if name.lower() == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                found[k] = v
    return found


def _safe_next(target: str) -> str:
    """Only a path on this server (no scheme, no host, no ``//``) to return to after signing in."""
    parts = urlsplit(target or "/")
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _form(lang: str, next_url: str, wrong: bool) -> bytes:
    zh = catalog("zh") if lang == "zh" else {}
    tr = lambda s: html.escape(zh.get(s, s))  # noqa: E731
    error = f'<p style="color:#c00">{tr("Wrong password.")}</p>' if wrong else ""
    return f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>XTuner Studio</title></head>
<body style="font-family:sans-serif;max-width:22rem;margin:4rem auto">
<h1>XTuner Studio</h1>{error}
<form method="post" action="{LOGIN_PATH}"><input type="hidden" name="next" value="{html.escape(next_url)}">
<label>{tr("Password")}<br><input type="password" name="password" autofocus></label>
<p><button type="submit">{tr("Sign in")}</button></p></form></body></html>""".encode()


class PasswordGate:
    """ASGI middleware: with a password set, every request but the health check needs the signed
    cookie; without it a page gets the sign-in form (401), anything else 401, the websocket is
    refused. The form posts to ``LOGIN_PATH`` and returns to the page it came from."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        password = expected_password() if scope["type"] in ("http", "websocket") else None
        if not password or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if cookie_ok(_cookies(scope.get("headers") or []).get(COOKIE), password):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        lang = "zh" if query.get("lang") == ["zh"] else "en"
        if scope["path"] == LOGIN_PATH and scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body") or len(body) > 65536:
                    break
            form = parse_qs(body.decode("utf-8", "replace"))
            target = _safe_next((form.get("next") or ["/"])[0])
            given = (form.get("password") or [""])[0]
            if hmac.compare_digest(given.encode(), password.encode()):
                cookie = f"{COOKIE}={_token(password)}; Path=/; HttpOnly; SameSite=Strict"
                return await _respond(send, 303, b"", [(b"location", target.encode()),
                                                        (b"set-cookie", cookie.encode())])
            await asyncio.sleep(1.0)  # slows down guessing
            return await _respond(send, 401, _form(lang, target, wrong=True))
        target = scope["path"] + (("?" + scope["query_string"].decode("latin-1")) if scope.get("query_string") else "")
        return await _respond(send, 401, _form(lang, _safe_next(quote(target, safe="/?=&%:+,;@")), wrong=False))


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
