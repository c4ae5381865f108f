"""Test-suite wiring: markers, shared fixtures, and a check that nothing leaks.

Fixtures live in ``tests/fixtures/`` (``minio``, ``make_minio``, ``s3_bucket``,
``gcs``, ``gcs_bucket``, ``azurite``, ``az_container``, ``kube``, ``nats_server``). ``tests/`` is
on ``sys.path`` through ``pythonpath`` in pyproject.toml, so test modules import
them as ``fixtures.minio``.
"""

from __future__ import annotations

import pytest

from fixtures.prereq import check_markers

pytest_plugins = ["fixtures.minio", "fixtures.gcs", "fixtures.azurite", "fixtures.kube",
                  "fixtures.nats", "fixtures.leaks"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    check_markers(item)
