"""Scenario 7: an OpenFilesCachePolicy reaches a running engine without a remount.

The volume's own spec says 2Gi and 1h; a policy that selects the volume says
3Gi and 2h. The engine serving the running pod reports the policy's values
(asked through its control socket in the mounter pod), and the pod's mount is
the same one throughout (its file stays open and readable).
"""

from __future__ import annotations

import secrets as random

from e2e.kubectl import Kubectl, wait_for
from e2e.release import Cluster, ObjectStore
from e2e.workload import engine_status, pod, secret, volume, wait_volume_ready


def test_the_engine_reports_the_new_ttl_and_size(
    cluster: Cluster, object_store: ObjectStore, namespace: str
) -> None:
    kube: Kubectl = cluster.kube
    bucket = object_store.bucket()
    tier = "e2e-" + random.token_hex(3)
    source = f"s3://{bucket.name}/p"
    kube.apply(secret("creds", namespace, bucket))
    kube.apply(volume("data", namespace, object_store, source, "creds", labels={"tier": tier}))
    wait_volume_ready(kube, "data", namespace)
    # The pod holds a file open for the whole test: a remount would break its reads.
    kube.apply(pod("holder", namespace, "data", "echo kept > /data/f; exec 3</data/f; sleep 3600"))
    kube.wait_pod("holder", namespace, ["Running"], timeout=180)
    state = cluster.node_dir("state")
    first = engine_status(kube, state, source)["policy"]
    assert first["cache_size"] == 2 * 2**30 and first["cache_ttl"] == 3600, first
    started = kube.get("pod", "holder", namespace)["status"]["containerStatuses"][0]["restartCount"]

    policy = f"e2e-{tier}"
    kube.apply(
        {
            "apiVersion": "openfiles.io/v1alpha1",
            "kind": "OpenFilesCachePolicy",
            "metadata": {"name": policy},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "volumeSelector": {"matchLabels": {"tier": tier}},
                "maxSize": "3Gi",
                "ttl": "2h",
                "priority": 10,
            },
        }
    )
    try:

        def applied() -> dict[str, float] | None:
            now = engine_status(kube, state, source)["policy"]
            return now if now["cache_size"] == 3 * 2**30 and now["cache_ttl"] == 7200 else None

        wait_for("the engine to report the policy's values", applied, timeout=180, every=3)
        ofv = kube.get("openfilesvolume", "data", namespace)
        assert policy in str(ofv["status"].get("effectivePolicy")), ofv["status"]
        holder = kube.get("pod", "holder", namespace)
        assert holder["status"]["phase"] == "Running"
        assert holder["status"]["containerStatuses"][0]["restartCount"] == started
        assert kube.exec("holder", namespace, "cat", "/proc/1/fd/3") == "kept\n"
    finally:
        kube.delete("openfilescachepolicy", policy)
