"""The endpoint policy's grammar and matching."""

from __future__ import annotations

import pytest

from openfiles_contracts.endpoint import EndpointPatternError, EndpointPolicy


def test_an_empty_policy_allows_everything() -> None:
    policy = EndpointPolicy([])
    assert not policy.restricts
    assert policy.refusal("http://169.254.169.254") is None


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://minio.storage.svc:9000",
        "HTTPS://MinIO.Storage.Svc.:9000/",
        "https://minio.storage.svc:9000/some/path",
        "https://eu.s3.example.com",
        "https://a.b.s3.example.com:443",
        "",  # the store's public service
    ],
)
def test_listed_endpoints_are_allowed(endpoint: str) -> None:
    policy = EndpointPolicy(["https://minio.storage.svc:9000", "https://*.s3.example.com"])
    assert policy.refusal(endpoint) is None


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://minio.storage.svc:9000",  # another scheme
        "https://minio.storage.svc",  # another port (443)
        "https://s3.example.com",  # the wildcard needs at least one label
        "https://evil-s3.example.com",  # a suffix match is on a label boundary
        "https://s3.example.com.evil.net",
        "http://169.254.169.254",
        "https://user@minio.storage.svc:9000",
        "ftp://minio.storage.svc:9000",
        "https://minio.storage.svc:99999",
    ],
)
def test_anything_else_is_refused_with_the_allowed_list(endpoint: str) -> None:
    policy = EndpointPolicy(["https://minio.storage.svc:9000", "https://*.s3.example.com"])
    reason = policy.refusal(endpoint)
    assert reason is not None and repr(endpoint) in reason


def test_the_refusal_names_the_allowed_patterns() -> None:
    reason = EndpointPolicy(["https://minio.storage.svc:9000"]).refusal("http://10.0.0.1")
    assert reason is not None and "allowed: https://minio.storage.svc:9000" in reason


@pytest.mark.parametrize(
    "pattern",
    ["minio:9000", "https://", "https://host/path", "https://a.*.b", "https://*", "s3://x",
     "https://u:p@host"],
)
def test_a_malformed_pattern_is_refused_by_name(pattern: str) -> None:
    with pytest.raises(EndpointPatternError, match="endpoint pattern"):
        EndpointPolicy([pattern])
