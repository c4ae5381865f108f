"""The obstore side against a real MinIO: the reachability check and prefix deletion."""

from __future__ import annotations

import asyncio
import socket
import time

import obstore
import pytest

from fixtures.minio import Bucket
from openfiles_operator.bucket import check_reachable, delete_prefix
from openfiles_operator.credentials import Credentials
from openfiles_operator.errors import BucketError
from openfiles_operator.volume import Location

pytestmark = pytest.mark.s3


def creds(bucket: Bucket) -> Credentials:
    return Credentials(bucket.server.access_key, bucket.server.secret_key)


def location(bucket: Bucket, prefix: str = "", name: str = "") -> Location:
    return Location(name or bucket.name, prefix, bucket.endpoint, "us-east-1")


def test_an_empty_bucket_is_reachable(s3_bucket: Bucket) -> None:
    asyncio.run(check_reachable(location(s3_bucket, "nothing/here"), creds(s3_bucket), 5))


def test_wrong_secret_is_reported_without_the_secret(s3_bucket: Bucket) -> None:
    wrong = Credentials(s3_bucket.server.access_key, "not-the-secret-Zq81")
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
    wrong = Credentials(s3_bucket.server.access_key, "not-the-secret-Zq81")
    with pytest.raises(BucketError, match="SignatureDoesNotMatch"):
        asyncio.run(check_reachable(location(s3_bucket), wrong, 5))
