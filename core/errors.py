"""Errors a person sees: an English message template (the key ``ui.i18n.t`` translates) and its parameters.

Code under core/ raises ``UserError`` (or a subclass) with a literal template, never an f-string, so the
page can show it in either language (``ui.errors.show_error``). Raw text (an exception's own words, a
traceback line) goes in ``details``: the page shows it only inside an expandable block.
"""
from __future__ import annotations

from urllib.parse import urlsplit


class UserError(ValueError):
    """``text``: the English template (also the error's code: one message per code); ``params``: its values."""

    def __init__(self, text: str, *, details: str = "", **params):
        super().__init__(text.format(**params) if params else text)
        self.text, self.params, self.details = text, params, details

    def as_dict(self) -> dict:
        return {"text": self.text, "params": self.params, "details": self.details, "message": str(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "UserError":
        return cls(d["text"], details=d.get("details", ""), **d.get("params", {}))


# --- network failures -------------------------------------------------------------------------------
E_DNS = "Cannot reach {host}: its name cannot be resolved (no network, or no DNS)."
E_REFUSED = "Cannot reach {host}: the connection was refused (a wrong address, or a proxy is needed)."
E_TIMEOUT = "Cannot reach {host}: the connection timed out (a slow or blocked network, or a proxy is needed)."
E_OFFLINE = "Cannot reach {host}: the hub client is in offline mode (HF_HUB_OFFLINE=1)."
E_SSL = "Cannot reach {host}: the secure connection failed (a proxy or a certificate problem)."
E_NETWORK = "Cannot reach {host}: no network, or the address is blocked."
MESSAGES = [E_DNS, E_REFUSED, E_TIMEOUT, E_OFFLINE, E_SSL, E_NETWORK]

_NETWORK_NAMES = {"ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "NetworkError", "ConnectError",
                  "ConnectionRefusedError", "gaierror", "OfflineModeIsEnabled", "MaxRetryError", "NewConnectionError",
                  "NameResolutionError", "SSLError", "ProxyError", "TimeoutError", "socket.timeout"}


def chain(exc: BaseException):
    """The exception and every cause or context behind it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def host_of(endpoint: str) -> str:
    return urlsplit(endpoint).netloc or endpoint


def network_error(exc: BaseException, endpoint: str) -> UserError | None:
    """The cause of a connection failure in ``exc``'s chain (DNS, refused, timeout, offline…) as a
    ``UserError`` about ``endpoint``, the raw text in its details; None if it is not a network failure."""
    links = list(chain(exc))
    if not any(type(e).__name__ in _NETWORK_NAMES for e in links):
        return None
    raw = " ".join(f"{type(e).__name__}: {e}" for e in links).lower()
    if "offlinemode" in raw or "offline mode" in raw:
        text = E_OFFLINE
    elif any(w in raw for w in ("nameresolution", "name or service not known", "temporary failure in name",
                                "nodename nor servname", "gaierror", "getaddrinfo")):
        text = E_DNS
    elif "refused" in raw:
        text = E_REFUSED
    elif "timed out" in raw or "timeout" in raw:
        text = E_TIMEOUT
    elif "ssl" in raw or "certificate" in raw:
        text = E_SSL
    else:
        text = E_NETWORK
    details = "\n".join(f"{type(e).__name__}: {e}" for e in links)
    return UserError(text, details=details[:4000], host=host_of(endpoint))


class NotFound(UserError, FileNotFoundError):
    """A file, folder or checkpoint the action needs is not there."""
