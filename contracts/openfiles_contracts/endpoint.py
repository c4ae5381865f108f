"""The endpoint policy: which store endpoints volumes may name (docs/OPERATOR.md).

A volume's spec (an OpenFilesVolume's ``spec.bucket.endpoint``, a StorageClass's
``endpoint`` parameter) names the address the operator and the CSI controller
call. Someone who may create a volume but not run pods in the operator's
namespace could otherwise point those calls at any address they can reach.
The chart value ``endpointPolicy.allowed`` lists the endpoints allowed; the
operator and the CSI controller both ask :meth:`EndpointPolicy.refusal` before
any request, so both refuse the same endpoints.

Pattern grammar, one entry each::

    http://HOST[:PORT]  or  https://HOST[:PORT]     that host exactly
    https://*.SUFFIX[:PORT]                        any host ending in ".SUFFIX"

A missing port is the scheme's default (80, 443); host names compare without
case and without a trailing dot; an endpoint's path is not part of the match.
An empty list allows every endpoint (the behaviour before the policy existed).
A volume that names no endpoint uses the store's public service for its
region, which the tenant does not choose: it is always allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORT = {"http": 80, "https": 443}


class EndpointPatternError(ValueError):
    """A policy entry that is not one of the grammar's forms; the message names it."""


@dataclass(frozen=True)
class _Pattern:
    scheme: str
    host: str  # without "*.": the exact host, or the suffix after "*."
    port: int
    wildcard: bool

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if (scheme, port) != (self.scheme, self.port):
            return False
        return host.endswith("." + self.host) if self.wildcard else host == self.host


def _split(text: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of ``text``; raises ValueError when it is no http(s) URL."""
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORT or not parts.hostname or "@" in parts.netloc:
        raise ValueError(f"{text!r} is not http(s)://HOST[:PORT]")
    port = parts.port or _DEFAULT_PORT[scheme]  # .port raises ValueError when out of range
    return scheme, parts.hostname.lower().rstrip("."), port, parts.path


def _pattern(text: str) -> _Pattern:
    # "*" is not a valid host character; swap it for a placeholder label to parse.
    wildcard = "://*." in text
    try:
        scheme, host, port, path = _split(text.replace("://*.", "://wildcard.", 1))
    except ValueError as exc:
        raise EndpointPatternError(f"endpoint pattern {exc}") from None
    if wildcard:
        host = host.removeprefix("wildcard.")
    if path not in ("", "/") or "*" in host or not host:
        raise EndpointPatternError(
            f"endpoint pattern {text!r} must be http(s)://HOST[:PORT] or "
            "http(s)://*.SUFFIX[:PORT], without a path"
        )
    return _Pattern(scheme, host, port, wildcard)


class EndpointPolicy:
    """The allowed endpoints; built once at start-up from the chart's list."""

    def __init__(self, patterns: list[str] | tuple[str, ...] = ()) -> None:
        """Raises EndpointPatternError naming the first malformed entry."""
        self.patterns = tuple(p.strip() for p in patterns if p.strip())
        self._parsed = tuple(_pattern(p) for p in self.patterns)

    @property
    def restricts(self) -> bool:
        return bool(self._parsed)

    def refusal(self, endpoint: str) -> str | None:
        """None when ``endpoint`` may be called; else why not, fit for a status or an error.

        The reason quotes the endpoint (the user's own text, already free of credentials
        where it reaches here) and the allowed patterns, never anything from the network.
        """
        if not self._parsed or not endpoint:
            return None
        try:
            scheme, host, port, _ = _split(endpoint)
        except ValueError:
            return f"endpoint {endpoint!r} is not http(s)://HOST[:PORT]"
        if any(p.matches(scheme, host, port) for p in self._parsed):
            return None
        return (
            f"endpoint {endpoint!r} is not allowed by the cluster's endpoint policy "
            f"(allowed: {', '.join(self.patterns)})"
        )
