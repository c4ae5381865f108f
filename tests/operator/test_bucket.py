"""The obstore side against a real MinIO: the reachability check and prefix deletion."""

from __future__ import annotations

import asyncio
import socket
import time

import obstore
import pytest

from fixtures.azurite import Container
from fixtures.gcs import Bucket as GcsBucket
from fixtures.minio import Bucket
from fixtures.server import ServerBucket
from openfiles_operator.bucket import check_reachable, delete_prefix
from openfiles_operator.credentials import Credentials
from openfiles_operator.errors import BucketError
from openfiles_operator.volume import Location

pytestmark = pytest.mark.s3  # the gs:// and az:// tests at the end add their own


def creds(bucket: ServerBucket) -> Credentials:
    return Credentials(bucket.secret)


def location(bucket: Bucket, prefix: str = "", name: str = "") -> Location:
    return Location(name or bucket.name, prefix, bucket.endpoint, "us-east-1")


def test_an_empty_bucket_is_reachable(s3_bucket: Bucket) -> None:
    asyncio.run(check_reachable(location(s3_bucket, "nothing/here"), creds(s3_bucket), 5))


def test_wrong_secret_is_reported_without_the_secret(s3_bucket: Bucket) -> None:
    wrong = Credentials({"accessKeyId": s3_bucket.server.access_key,
                         "secretAccessKey": "not-the-secret-Zq81"})
    with pytest.raises(BucketError) as err:
        asyncio.run(check_reachable(location(s3_bucket), wrong, 5))
    message = str(err.value)
    assert s3_bucket.url in message
    assert "not-the-secret-Zq81" not in message
    assert s3_bucket.server.access_key not in message


def test_missing_bucket_is_named(s3_bucket: Bucket) -> None:
    with pytest.raises(BucketError, match="s3://no-such-bucket-7f3a"):
        asyncio.run(check_reachable(location(s3_bucket, name="no-such-bucket-7f3a"),
                                    creds(s3_bucket), 5))


def test_silent_endpoint_times_out_within_the_bound(s3_bucket: Bucket) -> None:
    # A listening socket that never answers: the request hangs until our timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        dead = Location(s3_bucket.name, "", f"http://127.0.0.1:{port}", "us-east-1")
        started = time.monotonic()
        with pytest.raises(BucketError, match="s3://"):
            asyncio.run(check_reachable(dead, creds(s3_bucket), 1.0))
        assert time.monotonic() - started < 5


def test_delete_prefix_removes_only_the_prefix(s3_bucket: Bucket) -> None:
    store = s3_bucket.store()
    # MinIO cannot hold an object "vol" next to a prefix "vol/"; "vol.txt" tests the boundary.
    for key in ("vol/a", "vol/b/c", "vol/.openfiles/meta", "volume2/x", "vol.txt", "other/vol/y"):
        obstore.put(store, key, b"data")
    count = asyncio.run(delete_prefix(location(s3_bucket, "vol"), creds(s3_bucket), 5))
    assert count == 3
    assert sorted(s3_bucket.keys()) == ["other/vol/y", "vol.txt", "volume2/x"]
    again = asyncio.run(delete_prefix(location(s3_bucket, "vol"), creds(s3_bucket), 5))
    assert again == 0


def test_delete_prefix_refuses_a_whole_bucket(s3_bucket: Bucket) -> None:
    obstore.put(s3_bucket.store(), "keep", b"data")
    with pytest.raises(BucketError, match="whole bucket"):
        asyncio.run(delete_prefix(location(s3_bucket, ""), creds(s3_bucket), 5))
    assert s3_bucket.keys() == ["keep"]


def test_a_foreign_answer_is_not_echoed(s3_bucket: Bucket) -> None:
    """The endpoint is the user's choice, the request comes from the operator's pod: the
    body of whatever answers there must not reach the status (a read of internal services
    by proxy). The status code stays, and so does an S3 error code."""
    import http.server
    import threading

    class Internal(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"internal-token=TOPSECRET-51f2; <Code>NotS3</Code>"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Internal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(BucketError) as err:
            asyncio.run(check_reachable(Location(s3_bucket.name, "p", endpoint, "us-east-1"),
                                        creds(s3_bucket), 5))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    message = str(err.value)
    assert "TOPSECRET" not in message and "internal-token" not in message
    assert "500" in message


def test_an_s3_error_code_is_kept(s3_bucket: Bucket) -> None:
    wrong = Credentials({"accessKeyId": s3_bucket.server.access_key,
                         "secretAccessKey": "not-the-secret-Zq81"})
    with pytest.raises(BucketError, match="SignatureDoesNotMatch"):
        asyncio.run(check_reachable(location(s3_bucket), wrong, 5))


# --- gs:// and az:// against the emulators (fixtures/gcs.py, fixtures/azurite.py) ---------


def store_location(bucket: ServerBucket, prefix: str = "", name: str = "",
                   endpoint: str = "") -> Location:
    """The Location a volume of ``bucket`` (GCS bucket or Azure container) gets."""
    return Location(name or bucket.name, prefix, endpoint or bucket.endpoint, "",
                    scheme=bucket.scheme, account=bucket.context.get("account", ""))


@pytest.mark.gcs
def test_a_gcs_bucket_is_listed_and_a_missing_one_named(gcs_bucket: GcsBucket) -> None:
    gcs_bucket.seed("vol/a", b"x")
    asyncio.run(check_reachable(store_location(gcs_bucket, "vol"), creds(gcs_bucket), 5))
    missing = r"cannot list gs://no-such-bucket-7f3a/vol: .*404 Not Found \(NoSuchBucket\)$"
    with pytest.raises(BucketError, match=missing):
        asyncio.run(check_reachable(store_location(gcs_bucket, "vol", "no-such-bucket-7f3a"),
                                    creds(gcs_bucket), 5))


@pytest.mark.azure
def test_an_azure_container_is_listed_with_a_key_or_a_sas_token(az_container: Container) -> None:
    asyncio.run(check_reachable(store_location(az_container, "vol"), creds(az_container), 5))
    sas = Credentials({"sasToken": az_container.sas_token("rl")})
    asyncio.run(check_reachable(store_location(az_container, "vol"), sas, 5))


@pytest.mark.azure
def test_a_wrong_azure_key_is_classified_without_the_key(az_container: Container) -> None:
    wrong = Credentials({"accountKey": "d3Jvbmcta2V5LVpxODE="})  # "wrong-key-Zq81"
    with pytest.raises(BucketError) as err:
        asyncio.run(check_reachable(store_location(az_container, "vol"), wrong, 5))
    message = str(err.value)
    assert message.startswith(f"cannot list {az_container.url}/vol: ")
    # Azurite's answer: the status and Azure's error code, not its message.
    assert message.endswith("403 Forbidden (AuthorizationFailure)"), message
    assert "d3Jvbmcta2V5" not in message and "<Message>" not in message


@pytest.mark.azure
def test_an_azure_sas_token_without_list_is_refused(az_container: Container) -> None:
    read_only = Credentials({"sasToken": az_container.sas_token("r")})
    with pytest.raises(BucketError, match="403"):
        asyncio.run(check_reachable(store_location(az_container, "vol"), read_only, 5))


@pytest.mark.gcs
@pytest.mark.azure
def test_an_unreachable_gcs_or_azure_endpoint_is_named(gcs_bucket: GcsBucket,
                                                       az_container: Container) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    for bucket in (gcs_bucket, az_container):
        with pytest.raises(BucketError, match=f"cannot list {bucket.url}: ") as err:
            asyncio.run(check_reachable(store_location(bucket, endpoint=dead), creds(bucket), 2))
        assert "PRIVATE" not in str(err.value)


@pytest.mark.azure
def test_delete_prefix_in_an_azure_container(az_container: Container) -> None:
    store = az_container.store()
    for key in ("vol/a", "vol/b/c", "volume2/x"):
        obstore.put(store, key, b"data")
    location = store_location(az_container, "vol")
    assert asyncio.run(delete_prefix(location, creds(az_container), 5)) == 2
    assert az_container.keys() == ["volume2/x"]
