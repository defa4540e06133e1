"""The webhook a flow's treatment sends are POSTed to: its settings, and its URL checked before any request.

A webhook URL often carries a secret (`https://user:token@host/...`, a token in the query, a signed path), so no
message here or in the delivery log ever prints more than `scheme://host:port/…`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx


@dataclass(frozen=True)
class Webhook:
    url: str
    max_attempts: int = 8  # over all ticks
    timeout_seconds: float = 5.0
    backoff_seconds: tuple[float, ...] = (0.5, 1.0, 2.0)  # retries within one tick
    tick_budget_seconds: float = 15.0  # a slow receiver never holds the sensor past its interval


def check_webhook_url(url: str) -> str:
    """`url` if a webhook can be POSTed to it, else a ValueError saying why.

    An http(s) URL with a host and, if given, a port from 1 to 65535, free of spaces and control characters.
    The message shows only `scheme://host:port/…`: the user, password, path and query may hold a secret (a
    token in the query, a signed path) and are never printed.
    """
    shown = shown_url(url)
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise ValueError(f"the URL holds a space or a control character: {shown}")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"not a valid URL: {shown}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the URL must start with http:// or https://: {shown}")
    port = _port_text(parts.netloc)
    try:
        valid_port = parts.port is None or parts.port > 0
    except ValueError:
        valid_port = False
    if not valid_port:
        raise ValueError(f"invalid port {port[:12]!r}, use 1 to 65535: {shown}")
    if not parts.hostname:
        raise ValueError(f"the URL has no host: {shown}")
    try:
        httpx.URL(url)
    except httpx.InvalidURL:
        raise ValueError(f"not a valid URL: {shown}") from None
    return url


def shown_url(url: str) -> str:
    """`scheme://host:port/…` of a URL, for messages: never its user, password, path or query."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 bracket
        parts = None
    if parts is None or not parts.scheme or not parts.netloc:
        return "(the URL is not shown)"
    tail = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else parts.path
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2][:100]}{tail}"


def _port_text(netloc: str) -> str:
    """The port as written in a URL's netloc ('' without one), after any user:password@."""
    host = netloc.rpartition("@")[2]
    after_ipv6 = host.rpartition("]")[2]
    return after_ipv6.rpartition(":")[2] if ":" in after_ipv6 else ""


def without_secrets(text: str, url: str) -> str:
    """`text` with the URL and its user, password, path and query replaced by the shown URL / `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(the error is not shown: it may hold the URL)" if url in text else text
    text = text.replace(url, shown_url(url))
    secrets = [parts.username, parts.password, parts.query, parts.path if len(parts.path) > 1 else None]
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
