"""Scenario 12: the chart's own NATS server carries a volume's mutation events.

``helm upgrade`` with ``events.nats.server.enabled`` (a token from a Secret, and a fixed
ClusterIP: this cluster has no DNS, so the nodes connect to the Service's address). A
volume staged afterwards gets a relay: the engine's status and the OpenFilesVolume's
status say events are connected, and a subscriber pod in the cluster receives the event
of a file a pod writes, on that volume's subject. The release is upgraded back after.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from e2e.kubectl import Kubectl, wait_for
from e2e.release import SYSTEM_NS, Cluster, ObjectStore, helm_release
from e2e.workload import engine_status, image, pod, secret, volume, wait_volume_ready
from openfiles_contracts.event import subject

NATS_IP = "10.96.100.22"  # in the cluster's Service range (e2e/cluster/README.md)
NATS_SECRET = "openfiles-nats"

# Subscribes to every volume's subject with the token, prints each message as a JSON
# line, and says "ready" once the subscription is in place.
SUBSCRIBER = """
import asyncio, json, os, nats

async def main():
    nc = await nats.connect(os.environ["NATS_URL"], token=os.environ["NATS_TOKEN"])
    async def show(msg):
        print(json.dumps({"subject": msg.subject, "data": msg.data.decode()}), flush=True)
    await nc.subscribe("openfiles.v1.>", cb=show)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def _subscriber(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "subscriber", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": image(),
                "imagePullPolicy": "Never",
                "command": ["python3", "-c", SUBSCRIBER],
                "env": [
                    {"name": "NATS_URL", "value": f"nats://{NATS_IP}:4222"},
                    {"name": "NATS_TOKEN", "valueFrom": {"secretKeyRef": {
                        "name": NATS_SECRET, "key": "token"}}},
                ],
            }],
        },
    }


def _messages(kube: Kubectl, namespace: str) -> list[dict[str, str]]:
    lines = kube.logs("subscriber", namespace).splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _node_line(kube: Kubectl, name: str, namespace: str) -> dict[str, Any] | None:
    ofv = kube.get("openfilesvolume", name, namespace) or {}
    nodes = ofv.get("status", {}).get("nodes") or []
    return nodes[0] if nodes and "eventsConnected" in nodes[0] else None


def test_in_chart_nats_carries_the_events(
    cluster: Cluster, object_store: ObjectStore, namespace: str
) -> None:
    kube: Kubectl = cluster.kube
    token = secrets.token_hex(16)
    for ns in (SYSTEM_NS, namespace):
        kube.apply({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": NATS_SECRET, "namespace": ns},
                    "stringData": {"token": token}})
    try:
        helm_release(cluster, "upgrade", {
            "events.nats.server.enabled": "true",
            "events.nats.server.clusterIP": NATS_IP,
            "events.nats.existingSecret": NATS_SECRET,
        })
        events_arg = f"--events-url=nats://{NATS_IP}:4222"
        # helm's --wait can return before the DaemonSet controller has replaced the pod.
        wait_for("the node plugin replaced, with the in-chart server's URL", lambda: all(
            p["status"].get("phase") == "Running"
            and any(events_arg in c.get("args", []) for c in p["spec"]["containers"])
            for p in kube.items("pods", SYSTEM_NS, "app.kubernetes.io/component=csi-node")
        ), timeout=180)

        kube.apply(_subscriber(namespace))
        kube.wait_pod("subscriber", namespace, ["Running"], timeout=120)
        wait_for("the subscriber's subscription",
                 lambda: "ready" in kube.logs("subscriber", namespace).split(), timeout=60)

        bucket = object_store.bucket()
        kube.apply(secret("creds", namespace, bucket))
        url = f"s3://{bucket.name}/events"
        kube.apply(volume("data", namespace, object_store, url, "creds"))
        wait_volume_ready(kube, "data", namespace)
        kube.apply(pod("writer", namespace, "data", "echo hello > /data/hello.txt; sleep 3600"))
        kube.wait_pod("writer", namespace, ["Running"], timeout=180)

        status = wait_for("the engine's relay connected", lambda: (
            st if (st := engine_status(kube, cluster.node_dir("state"), url))
            .get("events", {}).get("connected") else None), timeout=60)
        line = wait_for("eventsConnected in the volume's status",
                        lambda: _node_line(kube, "data", namespace), timeout=60)
        assert line["eventsConnected"] is True, line
        assert "events connected" in line["summary"], line
        assert token not in json.dumps(kube.get("openfilesvolume", "data", namespace))

        want = subject(status["source"])
        got = wait_for("the write's event at the subscriber", lambda: [
            m for m in _messages(kube, namespace)
            if m["subject"] == want
            and str(json.loads(m["data"]).get("key", "")).endswith("hello.txt")
        ] or None, timeout=60)
        event = json.loads(got[0]["data"])
        assert event["gone"] is False and event["etag"], event
    finally:
        helm_release(cluster, "upgrade")
        kube("delete", "secret", NATS_SECRET, "-n", SYSTEM_NS, "--ignore-not-found")
