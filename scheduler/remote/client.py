"""One HTTP connection to `herd serve`: JSON calls, streamed bodies, and errors rebuilt.

A refused request comes back as the HerdError the server raised (same class, message and exit
code: scheduler/server/errors.py writes the body), so the CLI prints it as it would locally. A
server that does not answer is Unavailable (exit 6) naming the address; an answer that is not
herd's (a proxy's HTML page) is a HerdError saying so, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from storage import errors
from storage.errors import HerdError, Unavailable

API_PREFIX = "/api/v1"
CONNECT_SECONDS = 10.0


class ApiClient:
    """Calls to one server; `address` is HERD_ADDRESS (`http://host:port`)."""

    def __init__(self, address: str, token: str | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.address = address.rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        # No read timeout: flush-commit and get-logs -f wait as long as their jobs run.
        self._http = httpx.Client(
            base_url=self.address + API_PREFIX, transport=transport, headers=headers,
            timeout=httpx.Timeout(None, connect=CONNECT_SECONDS),
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """One request whose answer is JSON (or empty: None)."""
        with self.stream(method, path, params=params, json=json) as response:
            body = response.read()
        if not body:
            return None
        try:
            return response.json()
        except ValueError:
            raise HerdError(f"herd server at {self.address} answered {method} {path} with something "
                            "that is not JSON") from None

    @contextmanager
    def stream(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
        content: Iterable[bytes] | None = None, headers: dict[str, str] | None = None,
    ) -> Iterator[httpx.Response]:
        """A request whose body (`content`, an iterable of byte chunks) and answer are streamed:
        neither is held whole in memory."""
        request = self._http.build_request(
            method, path, params=_query(params), json=json, content=content, headers=headers)
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise Unavailable(f"herd server at {self.address} does not answer: {_reason(exc)}") from None
        try:
            if response.is_error:
                response.read()
                raise error_from(response, self.address)
            yield response
        except httpx.TransportError as exc:
            raise Unavailable(f"herd server at {self.address} went away mid-answer: {_reason(exc)}") from None
        finally:
            response.close()


def _query(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Query parameters without the unset ones; booleans as `true`/`false`."""
    if params is None:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


def _reason(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def error_from(response: httpx.Response, address: str) -> HerdError:
    """The HerdError a refused request stands for (scheduler/server/errors.py's body)."""
    try:
        detail = response.json()["error"]
        name, message, exit_code = str(detail["type"]), str(detail["message"]), int(detail["exit_code"])
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200]
        return HerdError(f"herd server at {address} answered {response.status_code}: {text or 'no body'}")
    return rebuild(name, message, exit_code)


def rebuild(name: str, message: str, exit_code: int) -> HerdError:
    """An error of the class the server named, carrying its message; an unknown name (a newer
    server's class) becomes a HerdError with the server's exit code."""
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, HerdError)):
        error = HerdError(message)
        error.exit_code = exit_code
        return error
    error = cls.__new__(cls)  # the subclasses' own __init__ builds the message from its parts
    HerdError.__init__(error, message)
    return error
