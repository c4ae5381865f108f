"""Node service with real FUSE mounts: publish modes, data reaching the bucket, bad input."""

from __future__ import annotations

import errno
import functools
import os
import subprocess

import grpc
import obstore
import pytest

from fixtures.azurite import Container
from fixtures.minio import Bucket
from openfiles_csi._proto import csi_pb2

from ..conftest import Mode, Node, grpc_code, mount_cap, volume_on

pytestmark = [pytest.mark.fuse, pytest.mark.root, pytest.mark.s3]


def test_lifecycle_moves_data_to_the_bucket(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "life", exportDelay="1h")
    vol.stage()
    vol.stage()  # idempotent
    # The same volume and staging path with other options: ALREADY_EXISTS, engine kept.
    vol.context["cacheSize"] = "1Gi"
    assert grpc_code(lambda: vol.stage()) == grpc.StatusCode.ALREADY_EXISTS
    del vol.context["cacheSize"]
    assert grpc_code(lambda: vol.stage(mount_cap(Mode.SINGLE_NODE_READER_ONLY))) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    rw = str(node_env.kubelet / "pods" / "a" / "mount")
    ro = str(node_env.kubelet / "pods" / "b" / "mount")
    os.makedirs(os.path.dirname(rw))
    os.makedirs(os.path.dirname(ro))
    vol.publish(rw)
    vol.publish(rw)  # idempotent
    vol.publish(ro, readonly=True)
    # Same target, other options: ALREADY_EXISTS.
    assert grpc_code(lambda: vol.publish(rw, readonly=True)) == grpc.StatusCode.ALREADY_EXISTS
    with open(os.path.join(rw, "hello.txt"), "w") as f:
        f.write("hello from a pod")
    with open(os.path.join(ro, "hello.txt")) as f:
        assert f.read() == "hello from a pod"
    with pytest.raises(OSError) as info:
        open(os.path.join(ro, "nope.txt"), "w").close()
    assert info.value.errno == errno.EROFS
    stats = vol.stats(rw)
    assert not stats.volume_condition.abnormal, stats.volume_condition.message
    # A path that is some other mount is not this volume's: another file system, or
    # another volume's engine.
    other = node_env.kubelet / "pods" / "c" / "mount"
    other.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(other)], check=True)
    try:
        assert grpc_code(lambda: vol.stats(str(other))) == grpc.StatusCode.NOT_FOUND
    finally:
        subprocess.run(["umount", str(other)], check=True)
    neighbour = volume_on(node_env, plugin, s3_bucket, "life-neighbour")
    neighbour.stage()
    assert grpc_code(lambda: vol.stats(neighbour.staging)) == grpc.StatusCode.NOT_FOUND
    neighbour.unstage()
    units = {u.unit for u in stats.usage}
    assert units == {csi_pb2.VolumeUsage.BYTES, csi_pb2.VolumeUsage.INODES}
    # exportDelay is 1h: nothing is exported before unstage flushes.
    assert "life/hello.txt" not in s3_bucket.keys()
    for target in (rw, ro):
        vol.unpublish(target)
        vol.unpublish(target)  # idempotent
        assert not os.path.exists(target)
    vol.unstage()
    vol.unstage()  # idempotent
    assert "life/hello.txt" in s3_bucket.keys()
    assert not os.path.ismount(vol.staging)
    # Flushed and stopped cleanly: the cache is deleted (by then, not in the background).
    assert os.listdir(node_env.root / "state" / "cache") == []


@pytest.mark.azure
def test_lifecycle_on_an_azure_container(node_env: Node, az_container: Container) -> None:
    """Stage, publish, write, unpublish, unstage with an account key from the secrets:
    the file reaches the container."""
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, az_container, "azlife", exportDelay="1h")
    vol.stage()
    target = str(node_env.kubelet / "pods" / "az" / "mount")
    os.makedirs(os.path.dirname(target))
    vol.publish(target)
    with open(os.path.join(target, "hello.txt"), "w") as f:
        f.write("hello from a pod")
    assert "azlife/hello.txt" not in az_container.keys()
    vol.unpublish(target)
    vol.unstage()
    assert az_container.keys() == ["azlife/hello.txt"]
    assert bytes(obstore.get(az_container.store(), "azlife/hello.txt").bytes()) == (
        b"hello from a pod")


def test_bad_requests(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "bad")
    inside = str(node_env.kubelet / "pods" / "x")
    # Publishing a volume that is not staged must not bind a bare directory.
    assert grpc_code(lambda: vol.publish(inside)) == grpc.StatusCode.FAILED_PRECONDITION
    assert not os.path.exists(inside)
    block = csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=mount_cap().access_mode
    )
    assert grpc_code(lambda: vol.stage(block)) == grpc.StatusCode.INVALID_ARGUMENT
    vol.context["cacheSzie"] = "1Gi"
    assert grpc_code(lambda: vol.stage()) == grpc.StatusCode.INVALID_ARGUMENT
    del vol.context["cacheSzie"]
    vol.staging = "/etc"
    assert grpc_code(lambda: vol.stage()) == grpc.StatusCode.INVALID_ARGUMENT
    vol.staging = str(node_env.kubelet / "x" / ".." / ".." / "escape")
    assert grpc_code(lambda: vol.stage()) == grpc.StatusCode.INVALID_ARGUMENT
    missing = csi_pb2.NodeGetVolumeStatsRequest(volume_id="nope", volume_path=inside)
    assert grpc_code(lambda: plugin.node.NodeGetVolumeStats(missing)) == grpc.StatusCode.NOT_FOUND
    assert (
        grpc_code(
            lambda: plugin.node.NodeExpandVolume(csi_pb2.NodeExpandVolumeRequest(volume_id="x"))
        )
        == grpc.StatusCode.UNIMPLEMENTED
    )


def test_mount_timeout_cleans_up(node_env: Node, s3_bucket: Bucket) -> None:
    # 50 ms is less than a Python engine needs to start, so the stage must time out.
    plugin = node_env.start_plugin("node", "--mount-timeout", "0.05")
    vol = volume_on(node_env, plugin, s3_bucket, "slow")
    vol.secrets = {"accessKeyId": "nobody", "secretAccessKey": "not-the-secret-value-42"}
    with pytest.raises(grpc.RpcError) as info:
        vol.stage()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "not ready" in (info.value.details() or "")
    assert "not-the-secret-value-42" not in (info.value.details() or "")
    assert "not-the-secret-value-42" not in plugin.proc.log()
    assert "not-the-secret-value-42" not in node_env.mounter.log()
    # No mount, no engine, no record: nothing a pod could write into by mistake.
    assert not os.path.ismount(vol.staging)
    assert os.listdir(node_env.root / "state" / "records") == []
    assert grpc_code(lambda: vol.publish(str(node_env.kubelet / "p"))) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


def test_read_only_access_mode(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "rox")
    vol.stage(mount_cap(Mode.MULTI_NODE_READER_ONLY))
    with pytest.raises(OSError) as info:
        open(os.path.join(vol.staging, "x"), "w").close()
    assert info.value.errno in {errno.EROFS, errno.EACCES, errno.EPERM}
    vol.unstage()


def test_fs_group_becomes_the_volume_group(node_env: Node, s3_bucket: Bucket) -> None:
    # kubelet passes the pod's fsGroup as volume_mount_group (VOLUME_MOUNT_GROUP); it wins
    # over the context's gid, and the bucket's files show it without any chown.
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "fsgroup", gid="5", fileMode="0664",
                    dirMode="0775")
    obstore.put(s3_bucket.store(), "fsgroup/imported.txt", b"from the bucket")
    cap = mount_cap()
    cap.mount.volume_mount_group = "2000"
    vol.stage(cap)
    imported = os.stat(os.path.join(vol.staging, "imported.txt"))
    assert (imported.st_gid, imported.st_mode & 0o777) == (2000, 0o664)
    assert os.stat(vol.staging).st_gid == 2000
    assert os.stat(vol.staging).st_mode & 0o7777 == 0o2775
    # What pods create belongs to the fsGroup too, whatever their own group
    # (docs/CSI.md, fsGroup): the directories are set-group-ID.
    pid = os.fork()
    if pid == 0:  # a pod process: its own uid and gid, the fsGroup as a supplementary group
        code = 1
        try:
            os.chdir(vol.staging)  # pytest's temp dirs above it are root's, 0700
            os.setgroups([2000])
            os.setgid(3000)
            os.setuid(3000)
            os.umask(0o002)
            os.mkdir("made-by-pod")
            with open(os.path.join("made-by-pod", "out.txt"), "wb") as out:
                out.write(b"written by a pod")
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0, "the pod process could not write"
    made = os.path.join(vol.staging, "made-by-pod")
    assert (os.stat(made).st_gid, os.stat(made).st_mode & 0o7777) == (2000, 0o2775)
    out = os.stat(os.path.join(made, "out.txt"))
    assert (out.st_uid, out.st_gid, out.st_mode & 0o777) == (3000, 2000, 0o664)
    vol.unstage()


def test_overlapping_calls_for_one_volume_abort(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "overlap")
    request = csi_pb2.NodeStageVolumeRequest(
        volume_id=vol.volume_id, staging_target_path=vol.staging,
        volume_capability=mount_cap(), volume_context=vol.context, secrets=vol.secrets)  # fmt: skip
    # The first call holds the volume while its engine starts (well over the few
    # milliseconds the second call needs to arrive).
    first = plugin.node.NodeStageVolume.future(request, timeout=90)
    second = plugin.node.NodeStageVolume.future(request, timeout=90)
    codes = set()
    for call in (first, second):
        try:
            call.result()
            codes.add(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.add(exc.code())
    assert codes == {grpc.StatusCode.OK, grpc.StatusCode.ABORTED}
    vol.unstage()


def test_ephemeral_inline_volume(node_env: Node, s3_bucket: Bucket) -> None:
    plugin = node_env.start_plugin("node")
    vol = volume_on(node_env, plugin, s3_bucket, "inline", exportDelay="1h")
    target = node_env.kubelet / "pods" / "inline" / "mount"
    target.parent.mkdir(parents=True)
    request = csi_pb2.NodePublishVolumeRequest(
        volume_id="csi-0123abcd", target_path=str(target), volume_capability=mount_cap(),
        volume_context={**vol.context, "csi.storage.k8s.io/ephemeral": "true"},
        secrets=vol.secrets)  # fmt: skip
    # Any pod author writes these attributes: no host files, no node identity.
    for context, secrets in (
        ({**request.volume_context, "url": "file:///var/lib/kubelet/pods"}, vol.secrets),
        (request.volume_context, {}),
    ):
        bad = csi_pb2.NodePublishVolumeRequest()
        bad.CopyFrom(request)
        bad.volume_context.clear()
        bad.volume_context.update(context)
        bad.secrets.clear()
        bad.secrets.update(secrets)
        publish = functools.partial(plugin.node.NodePublishVolume, bad, timeout=30)
        assert grpc_code(publish) == grpc.StatusCode.INVALID_ARGUMENT
    assert os.listdir(node_env.root / "state" / "records") == []
    plugin.node.NodePublishVolume(request, timeout=90)
    plugin.node.NodePublishVolume(request, timeout=90)  # idempotent
    (target / "inline.txt").write_text("from an inline volume")
    unpublish = csi_pb2.NodeUnpublishVolumeRequest(
        volume_id="csi-0123abcd", target_path=str(target)
    )
    plugin.node.NodeUnpublishVolume(unpublish, timeout=120)
    plugin.node.NodeUnpublishVolume(unpublish, timeout=120)
    assert not target.exists()
    # Unpublish flushed and stopped the engine: the data is in the bucket, no mount is left.
    assert "inline/inline.txt" in s3_bucket.keys()
    assert os.listdir(node_env.root / "state" / "records") == []
    ephemeral_root = node_env.kubelet / "plugins" / "csi.openfiles.io" / "ephemeral"
    assert os.listdir(ephemeral_root) == []
