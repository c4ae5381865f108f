"""Mount settings: the engine's names in messages, modes, the live policy, credentials.

The duration and quantity grammar itself is tests/contracts/test_quantity.py's.
"""

from __future__ import annotations

import pytest

from openfiles_engine.config import (
    ConfigError,
    Credentials,
    Policy,
    parse_duration,
    parse_mode,
    parse_quantity,
)


@pytest.mark.parametrize("text", ["", "5 minutes", "-1s", "1w", "s"])
def test_bad_durations_name_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match="--cache-ttl"):
        parse_duration(text, "--cache-ttl")


def test_bad_quantity_and_mode() -> None:
    with pytest.raises(ConfigError, match="--cache-size"):
        parse_quantity("ten gigs", "--cache-size")
    assert parse_mode("0644", "--file-mode") == 0o644
    with pytest.raises(ConfigError):
        parse_mode("0999", "--file-mode")
    with pytest.raises(ConfigError):
        parse_mode("017777", "--file-mode")


def test_policy_update_is_all_or_nothing() -> None:
    policy = Policy()
    policy.update({"cache_size": "1Gi", "export_delay": "5s"})
    assert (policy.cache_size, policy.export_delay) == (2**30, 5.0)
    with pytest.raises(ConfigError):
        policy.update({"cache_ttl": "1h", "metadata_ttl": "soon"})
    assert policy.cache_ttl == 24 * 3600.0  # unchanged: the bad value rejected the whole update
    with pytest.raises(ConfigError, match="unknown policy key"):
        policy.update({"colour": "blue"})


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials("AKIAEXAMPLE", "very-secret", "token-secret")
    assert "secret" not in repr(creds) and "AKIA" not in repr(creds)
