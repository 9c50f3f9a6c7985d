"""HTTP(S): one GET; 2xx is ok. Used for the connector proxy's liveness and the API's status."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit, urlunsplit

from spiffctl.config.settings import Endpoint
from spiffctl.probes import Outcome, classify_exception, ok, permanent, transient


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a probe reports what the URL itself answers


def request(url: str) -> urllib.request.Request:
    """``url`` as a request: its ``user:password@`` becomes a Basic Authorization header, as the
    backend's HTTP client sends it. urllib would keep it in the host name and look it up (the
    password sent to the DNS resolver)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return urllib.request.Request(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
    bare = urlunsplit(parts._replace(netloc=hostport))
    return urllib.request.Request(bare, headers={"Authorization": f"Basic {token}"})


def get(url: str, timeout: float) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.ProxyHandler({}))
    try:
        with opener.open(request(url), timeout=timeout) as resp:
            return resp.status, resp.read(65536)
    except urllib.error.HTTPError as e:
        return e.code, e.read(65536) if e.fp else b""


def check(endpoint: Endpoint, timeout: float) -> Outcome:
    try:
        status, body = get(endpoint.url, timeout)
    except urllib.error.URLError as e:
        reason = e.reason
        return classify_exception(reason) if isinstance(reason, BaseException) else transient(str(reason))
    except (OSError, ValueError) as e:
        return classify_exception(e)
    if 200 <= status < 300:
        return ok(f"HTTP {status}", status=str(status), body=body.decode("utf-8", "replace"))
    if status >= 500:
        return transient(f"HTTP {status}")
    return permanent(f"HTTP {status}")


def status_ok(body: str) -> bool:
    """The backend's ``/v1.0/status`` answers ``{"ok": true, ...}`` once the DB and schema are there."""
    try:
        return json.loads(body).get("ok") is True
    except (ValueError, AttributeError):
        return False
