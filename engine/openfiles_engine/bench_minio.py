"""The S3 server of the benchmark: a MinIO started for the run, or one given.

:class:`S3Site` is what every benchmark target needs to reach the bucket:
endpoint, region, bucket, key prefix and credentials. Its ``repr`` never shows
the secret key, and :meth:`S3Site.redact` scrubs both keys from any text
(subprocess logs) before the benchmark prints it.

:func:`start_minio` runs the MinIO server binary on 127.0.0.1 with a random
port, a temporary data directory and random credentials, and removes all of
it on exit. :func:`create_bucket` makes the bucket with one signed request
(obstore cannot create buckets, and the benchmark must not depend on the
test-only MinIO client).
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import hmac
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MINIO = Path("/root/.cache/openfiles-tools/bin/minio")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class ServerError(RuntimeError):
    """MinIO could not be started, or the bucket could not be created."""


@dataclass(frozen=True)
class S3Site:
    """Where the benchmark's objects live. Keys are ``prefix + "/" + path``."""

    endpoint: str
    region: str
    bucket: str
    prefix: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)

    def redact(self, text: str) -> str:
        """Return ``text`` with both credentials replaced by ``***``."""
        for secret in (self.secret_key, self.access_key):
            if secret:
                text = text.replace(secret, "***")
        return text

    def key(self, path: str) -> str:
        """The object key of ``path`` (relative, ``/``-separated) under the prefix."""
        return f"{self.prefix}/{path}" if self.prefix else path


# Loaded once here, in the parent: the child between fork and exec should do
# as little as possible (another thread may hold a lock dlopen needs).
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` of every child: SIGTERM it when the benchmark dies.

    The children run in their own sessions (so that a Ctrl-C reaches only the
    benchmark, which then unmounts in order); this covers the case where the
    benchmark itself is killed with SIGKILL and cannot clean up.
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_live(endpoint: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"minio exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise ServerError(f"minio did not answer within {timeout:.0f} s")


@contextmanager
def start_minio(
    binary: Path, bucket: str, prefix: str, workdir: Path, timeout: float = 60.0
) -> Iterator[S3Site]:
    """Run a private MinIO on 127.0.0.1 and yield its :class:`S3Site`.

    The bucket is created. On exit the server is stopped and its data
    directory deleted, also on KeyboardInterrupt.
    """
    if not binary.is_file():
        raise ServerError(f"minio binary not found at {binary} (give --minio or --endpoint)")
    data_dir = Path(tempfile.mkdtemp(prefix="minio-", dir=workdir))
    port, console_port = free_port(), free_port()
    site = S3Site(
        endpoint=f"http://127.0.0.1:{port}",
        region="us-east-1",
        bucket=bucket,
        prefix=prefix,
        access_key="bench" + secrets.token_hex(6),
        secret_key=secrets.token_urlsafe(24),
    )
    env = dict(os.environ)
    env.update(
        MINIO_ROOT_USER=site.access_key,
        MINIO_ROOT_PASSWORD=site.secret_key,
        MINIO_BROWSER="off",
        MINIO_UPDATE="off",
        # MinIO keeps config and certs under $HOME/.minio: keep them in the run dir.
        HOME=str(workdir),
    )
    argv = [str(binary), "server", str(data_dir), "--quiet"]
    argv += ["--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console_port}"]
    log = open(workdir / "minio.log", "wb")
    # Own session: a Ctrl-C in the terminal reaches only the benchmark, which
    # then stops MinIO last, after every mount on it is gone.
    process = subprocess.Popen(
        argv,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        _wait_live(site.endpoint, process, timeout)
        deadline = time.monotonic() + timeout
        # "Live" comes before "initialized": MinIO answers 503 for a moment.
        while not create_bucket(site, retry_unavailable=time.monotonic() < deadline):
            time.sleep(0.2)
        yield site
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _signed_request(site: S3Site, method: str, key: str | None) -> tuple[int, str]:
    """One SigV4-signed request without a body on the bucket (``key`` None) or a key.

    Returns the HTTP status and the body (redacted); never raises on HTTP errors.
    """
    url = urllib.parse.urlsplit(site.endpoint)
    path = "/" + urllib.parse.quote(site.bucket)
    if key is not None:
        path += "/" + urllib.parse.quote(key, safe="/-_.~")
    now = datetime.datetime.now(datetime.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": url.netloc, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    lines = [f"{name}:{headers[name]}" for name in sorted(headers)]
    canonical = "\n".join([method, path, "", *lines, "", signed, _EMPTY_SHA256])
    scope = f"{day}/{site.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing_key = _hmac(("AWS4" + site.secret_key).encode(), day)
    for part in (site.region, "s3", "aws4_request"):
        signing_key = _hmac(signing_key, part)
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={site.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    request = urllib.request.Request(site.endpoint + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, site.redact(reply.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        return exc.code, site.redact(exc.read().decode(errors="replace"))


def create_bucket(site: S3Site, retry_unavailable: bool = False) -> bool:
    """Create ``site.bucket`` with a signed PUT. An existing bucket we own is fine.

    Returns False on HTTP 503 when ``retry_unavailable`` (the caller retries),
    True once the bucket exists; raises ServerError otherwise.
    """
    status, body = _signed_request(site, "PUT", None)
    if status == 200 or (status == 409 and "BucketAlreadyOwnedByYou" in body):
        return True
    if status == 503 and retry_unavailable:
        return False
    raise ServerError(f"cannot create bucket {site.bucket!r}: HTTP {status} {body[:300]}")


def delete_markers(site: S3Site, directories: list[str]) -> None:
    """Delete the ``dir/`` marker objects some clients (s3fs) make for ``directories``.

    obstore cannot name a key that ends in ``/``, so these go by signed DELETE.
    A marker that does not exist is fine (S3 answers 204 either way).
    """
    for directory in directories:
        key = site.key(directory.strip("/")).rstrip("/") + "/"
        status, body = _signed_request(site, "DELETE", key)
        if status not in (200, 204, 404):
            raise ServerError(f"cannot delete marker {directory}/: HTTP {status} {body[:300]}")
