"""Mutation events through the real node plugin and mounter: the node's ``--events-url``
default and its NATS credentials (the chart's value and Secret) reach a staged volume's
engine; a re-stage after the default changed is the same volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.minio import Bucket
from fixtures.nats import NatsServer
from fixtures.net import wait_for
from openfiles_contracts import jsonline

from ..conftest import Node, volume_on

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3, pytest.mark.nats,
              pytest.mark.timeout(300)]

PASSWORD = "node-nats-password-42"


def engine_status(node: Node) -> dict[str, Any]:
    (mount,) = jsonline.request(node.mounter_socket, {"op": "list"}, timeout=10)["mounts"]
    reply = jsonline.request(mount["control_socket"], {"op": "status"}, timeout=10)
    status: dict[str, Any] = reply["status"]
    return status


def test_the_nodes_default_reaches_the_engine(node_env: Node, s3_bucket: Bucket,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    server = NatsServer(tmp_path / "nats")
    server.root.mkdir()
    server.user, server.password = "node", PASSWORD
    server.start()
    try:
        monkeypatch.setenv("OPENFILES_NATS_USER", "node")
        monkeypatch.setenv("OPENFILES_NATS_PASSWORD", PASSWORD)
        plugin = node_env.start_plugin("node", "--events-url", server.url)
        vol = volume_on(node_env, plugin, s3_bucket, "ev")
        vol.stage()
        wait_for(lambda: (engine_status(node_env)["events"] or {}).get("connected"), 30,
                 "the engine's events connected with the node's credentials")
        assert engine_status(node_env)["events"]["url"] == server.url
        # A later plugin with another default (a chart upgrade) re-stages the live volume:
        # the same volume, and the engine keeps its URL until the next stage.
        other = node_env.start_plugin("node", "--events-url", "nats://127.0.0.1:1")
        vol.plugin = other
        vol.stage()
        assert engine_status(node_env)["events"]["url"] == server.url
        vol.context["eventsURL"] = "off"  # the volume's own choice: the same volume, too
        vol.stage()
        assert engine_status(node_env)["events"]["connected"]
        # The password is in no log (plugin, mounter, engine, relay) and no record.
        for path in Path(node_env.root).rglob("*"):
            if path.is_file() and path.suffix in (".log", ".json"):
                assert PASSWORD not in path.read_text(errors="replace"), path
        vol.unstage()
    finally:
        server.stop()
