"""The S3 server of the benchmark: a MinIO started for the run, or one given.

:class:`S3Site` is what every benchmark target needs to reach the bucket:
endpoint, region, bucket, key prefix and credentials. Its ``repr`` never shows
the secret key, and :meth:`S3Site.redact` scrubs both keys from any text
(subprocess logs) before the benchmark prints it.

:func:`start_minio` runs the MinIO server binary on 127.0.0.1 with a random
port, a temporary data directory and random credentials, and removes all of
it on exit. :func:`create_bucket` makes the bucket and :func:`delete_markers`
removes ``dir/`` keys through the ``minio`` client library (obstore can do
neither), a dependency of the ``openfiles-bench`` distribution.
"""

from __future__ import annotations

import ctypes
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
from typing import Any

DEFAULT_MINIO = (
    Path(os.environ.get("OPENFILES_TOOLS_DIR", Path.home() / ".cache" / "openfiles-tools"))
    / "bin" / "minio"
)


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


def _client(site: S3Site) -> Any:
    """A ``minio.Minio`` client for ``site`` (a dependency of ``openfiles-bench``)."""
    try:
        from minio import Minio
    except ImportError as exc:
        raise ServerError("openfiles bench needs the minio package: `uv sync` in a clone "
                          "of the repository, or `pip install ./bench`") from exc
    url = urllib.parse.urlsplit(site.endpoint)
    return Minio(url.netloc, access_key=site.access_key, secret_key=site.secret_key,
                 secure=url.scheme == "https", region=site.region)


def _refused(site: S3Site, what: str, exc: Exception) -> ServerError:
    code = getattr(exc, "code", None) or type(exc).__name__
    status = getattr(getattr(exc, "response", None), "status", None)
    return ServerError(site.redact(f"cannot {what}: HTTP {status} {code}"))


def create_bucket(site: S3Site, retry_unavailable: bool = False) -> bool:
    """Create ``site.bucket``. An existing bucket we own is fine.

    Returns False while the server is still starting (HTTP 503) and
    ``retry_unavailable`` (the caller retries); True once the bucket exists;
    raises ServerError otherwise, with no credential in the message.
    """
    from minio.error import S3Error
    from minio.error import ServerError as HTTPServerError

    try:
        _client(site).make_bucket(site.bucket)
    except S3Error as exc:
        if exc.code == "BucketAlreadyOwnedByYou":
            return True
        if exc.code == "XMinioServerNotInitialized" and retry_unavailable:
            return False
        raise _refused(site, f"create bucket {site.bucket!r}", exc) from None
    except HTTPServerError as exc:
        if exc.status_code == 503 and retry_unavailable:
            return False
        raise _refused(site, f"create bucket {site.bucket!r}", exc) from None
    return True


def delete_markers(site: S3Site, directories: list[str]) -> None:
    """Delete the ``dir/`` marker objects some clients (s3fs) make for ``directories``.

    obstore cannot name a key that ends in ``/``. A marker that does not exist
    is fine (S3 answers 204 either way).
    """
    from minio.error import S3Error

    client = _client(site)
    for directory in directories:
        key = site.key(directory.strip("/")).rstrip("/") + "/"
        try:
            client.remove_object(site.bucket, key)
        except S3Error as exc:
            raise _refused(site, f"delete marker {directory}/", exc) from None
