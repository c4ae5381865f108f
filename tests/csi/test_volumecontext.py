"""Volume context and secrets become engine arguments and an environment; secrets only in env."""

from __future__ import annotations

import pytest

from openfiles_contracts.event import EventError
from openfiles_csi.plugin.errors import InvalidArgument
from openfiles_csi.volumecontext import NodeEvents, check_inline, node_events, parse

SECRETS = {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "s3cr3t-value"}


def test_full_context() -> None:
    spec = parse(
        {
            "url": "s3://bucket/base/pvc-1",
            "endpoint": "http://127.0.0.1:9000",
            "region": "us-east-1",
            "cacheSize": "10Gi",
            "exportDelay": "5s",
            "uid": "1000",
            "fileMode": "0640",
            "csi.storage.k8s.io/pod.name": "ignored",
        },
        SECRETS,
        read_only=True,
    )
    assert spec.source == "s3://bucket/base/pvc-1"
    assert spec.args == (
        "--endpoint", "http://127.0.0.1:9000", "--region", "us-east-1",
        "--cache-size", "10Gi", "--export-delay", "5s", "--file-mode", "0640", "--uid", "1000",
        "--allow-other", "--read-only",
    )  # fmt: skip
    assert spec.env == {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}
    assert "s3cr3t-value" not in repr(spec)
    assert "s3cr3t-value" not in str(spec.fingerprint())


@pytest.mark.parametrize(
    ("key", "value"),
    [("cacheSize", "1.5Gi"), ("cacheSize", "500k"), ("cacheSize", "1048576"),
     ("cacheTTL", "250ms"), ("cacheTTL", "2d"), ("exportDelay", "0.5"),
     ("dirMode", "2775"), ("fileMode", "644"), ("dirMode", "01777")],
)  # fmt: skip
def test_engine_grammar_is_accepted(key: str, value: str) -> None:
    spec = parse({"url": "s3://bucket/x", key: value}, {})
    assert value in spec.args


def test_mount_group_overrides_gid() -> None:
    spec = parse({"url": "s3://bucket/v", "gid": "5"}, {}, mount_group="2000")
    assert "--gid" in spec.args
    assert spec.args[spec.args.index("--gid") + 1] == "2000"
    assert "5" not in spec.args
    # Directories become set-group-ID, so that new files belong to the fsGroup too.
    assert spec.args[spec.args.index("--dir-mode") + 1] == "2755"
    given = parse({"url": "s3://bucket/v", "dirMode": "0770"}, {}, mount_group="2000")
    assert given.args.count("--dir-mode") == 1
    assert given.args[given.args.index("--dir-mode") + 1] == "2770"
    assert "--dir-mode" not in parse({"url": "s3://bucket/v"}, {}).args


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({}, "url is required"),
        ({"url": "http://bucket/x"}, "scheme"),
        ({"url": "s3://Bad_Bucket/x"}, "bucket"),
        ({"url": "s3://bucket/../x"}, r"'\.\.'"),
        ({"url": "s3://key:secret@bucket/x"}, "credentials"),
        ({"url": "s3://bucket/x", "endpoint": "ftp://x"}, "endpoint"),
        ({"url": "s3://bucket/x", "cacheSize": "lots"}, "cacheSize"),
        ({"url": "s3://bucket/x", "uid": "-1"}, "uid"),
        ({"url": "s3://bucket/x", "fileMode": "rw-r--r--"}, "fileMode"),
        ({"url": "s3://bucket/x", "cacheSzie": "1Gi"}, "unknown key 'cacheSzie'"),
    ],
)
def test_bad_context(context: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse(context, {})


def test_bad_secrets_name_keys_not_values() -> None:
    with pytest.raises(InvalidArgument) as info:
        parse({"url": "s3://bucket/x"}, {"password": "hunter2-secret"})
    assert "password" in str(info.value)
    assert "hunter2-secret" not in str(info.value)
    with pytest.raises(InvalidArgument, match="no key secretAccessKey"):
        parse({"url": "s3://bucket/x"}, {"accessKeyId": "AKIAEXAMPLE"})


def test_gcs_and_azure_secrets_become_their_environment() -> None:
    key = '{"type": "service_account", "client_email": "a@b", "private_key": "PEM-VALUE"}'
    spec = parse({"url": "gs://bucket/x"}, {"serviceAccountKey": key})
    assert spec.env == {"GOOGLE_SERVICE_ACCOUNT_KEY": key} and "PEM-VALUE" not in repr(spec)
    for secret, env in (
        ({"accountKey": "Sz09"}, "AZURE_STORAGE_ACCOUNT_KEY"),
        ({"accountName": "acct", "sasToken": "sv=1&sig=S"}, "AZURE_STORAGE_SAS_TOKEN"),
    ):
        spec = parse({"url": "az://container/x", "account": "acct"}, secret)
        # The account is no secret: it goes on the command line, so an engine started
        # without the Secret (a flush-only recovery) still finds its store.
        assert list(spec.env) == [env] and spec.args[:2] == ("--account", "acct")
        assert not set(secret.values()) - {"acct"} & set(spec.args)
    for context, secret, why in (
        ({"url": "az://container/x"}, {"accountKey": "Sz09"}, "account: az:// needs"),
        ({"url": "az://container/x", "account": "acct"}, {"accountName": "acct"},
         "no key accountKey or sasToken"),
        ({"url": "az://container/x", "account": "acct"},
         {"accountName": "other", "accountKey": "Sz09"}, "accountName differs"),
        ({"url": "az://container/x", "account": "acct"}, SECRETS,
         r"\['accessKeyId', 'secretAccessKey'\].*az://"),
        ({"url": "gs://bucket/x"}, {"accountKey": "Sz09"}, "gs://"),
        ({"url": "gs://bucket/x"}, {"serviceAccountKey": "{PEM-VALUE"}, "not JSON"),
        ({"url": "gs://bucket/x", "account": "acct"}, {}, "for az:// only"),
        ({"url": "s3://bucket/x"}, {"serviceAccountKey": key}, "s3://"),
        ({"url": "az://Container/x", "account": "acct"}, {}, "not an Azure container"),
    ):
        with pytest.raises(InvalidArgument, match=why) as info:
            parse(context, secret)
        assert not any(v in str(info.value) for v in secret.values() if v != "acct")


def test_a_key_that_names_another_endpoint_is_refused() -> None:
    """A service-account key's gcs_base_url is an endpoint too: it must be the volume's,
    which the endpoint policy has seen (CreateVolume, the operator)."""
    key = '{"client_email": "", "private_key": "", "gcs_base_url": "http://10.1.2.3"}'
    with pytest.raises(InvalidArgument, match="gcs_base_url"):
        parse({"url": "gs://bucket/x"}, {"serviceAccountKey": key})
    spec = parse({"url": "gs://bucket/x", "endpoint": "http://10.1.2.3"},
                 {"serviceAccountKey": key})
    assert spec.args[:2] == ("--endpoint", "http://10.1.2.3")


def test_inline_volumes_only_with_their_own_credentials() -> None:
    check_inline(parse({"url": "s3://bucket/x"}, SECRETS))
    for context, secrets, why in (
        ({"url": "file:///var/lib/kubelet/pods"}, SECRETS, "s3://"),
        ({"url": "memory://"}, SECRETS, "s3://"),
        ({"url": "s3://bucket/x"}, {}, "nodePublishSecretRef"),  # the node's own identity
    ):
        with pytest.raises(InvalidArgument, match=why):
            check_inline(parse(context, secrets))


def test_events_come_from_the_volume_or_the_node_default() -> None:
    node = NodeEvents("nats://node-default:4222", {"OPENFILES_NATS_USER": "node-user",
                                                   "OPENFILES_NATS_PASSWORD": "node-pw"})
    url = {"url": "s3://bucket/p"}
    spec = parse(url, {}, events=node)
    assert spec.args[-2:] == ("--events", "nats://node-default:4222")
    assert spec.env == {"OPENFILES_NATS_USER": "node-user", "OPENFILES_NATS_PASSWORD": "node-pw"}
    assert "node-pw" not in repr(spec) and "node-pw" not in str(spec.fingerprint())
    # The volume's own URL and credentials win; the node's credentials do not leak to it.
    spec = parse({**url, "eventsURL": "tls://vol:4222"}, {"natsToken": "vol-token"},
                 events=node)
    assert spec.args[-2:] == ("--events", "tls://vol:4222")
    assert spec.env == {"OPENFILES_NATS_TOKEN": "vol-token"}
    # off: no events, and no NATS credentials in the engine's environment.
    spec = parse({**url, "eventsURL": "off"}, {"natsToken": "t"}, events=node)
    assert "--events" not in spec.args and spec.env == {}
    assert "--events" not in parse(url, {}).args  # no default, no key: no events


@pytest.mark.parametrize(("value", "message"), [
    ("nats://user:pw@h:4222", "credentials in the URL"),
    ("http://h", "nats:// or tls://"),
])
def test_bad_events_url(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as info:
        parse({"url": "s3://bucket/p", "eventsURL": value}, {})
    assert "pw" not in str(info.value)


def test_the_node_default_is_checked() -> None:
    assert node_events("", {"OPENFILES_NATS_TOKEN": "t", "OTHER": "x"}) == \
        NodeEvents("", {"OPENFILES_NATS_TOKEN": "t"})
    with pytest.raises(EventError, match="credentials in the URL"):
        node_events("nats://a:b@h", {})
