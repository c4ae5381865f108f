from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from openfiles_engine.cli import parse_mount
from openfiles_engine.config import ConfigError
from openfiles_engine.control import serve

from .conftest import Backend, MountFactory


def test_parse_mount_options(tmp_path: Path) -> None:
    cfg, _ = parse_mount([
        "s3://b/p", str(tmp_path), "--endpoint", "http://127.0.0.1:9000", "--cache-size", "1Gi",
        "--cache-ttl", "1h", "--metadata-ttl", "10s", "--export-delay", "2m", "--uid", "7",
        "--gid", "8", "--file-mode", "0600", "--dir-mode", "0700", "--read-only",
        "--allow-other", "--fsid", "n1", "--control-socket", str(tmp_path / "s.sock"),
        "--cache-dir", str(tmp_path / "c"),
    ])
    assert (cfg.policy.cache_size, cfg.policy.cache_ttl, cfg.policy.metadata_ttl,
            cfg.policy.export_delay) == (2**30, 3600.0, 10.0, 120.0)
    assert (cfg.uid, cfg.gid, cfg.file_mode, cfg.dir_mode) == (7, 8, 0o600, 0o700)
    assert cfg.read_only and cfg.allow_other and cfg.fsid == "n1"


def test_credentials_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "sec"}))
    cfg, _ = parse_mount(["s3://b", str(tmp_path), "--credentials-file", str(creds)])
    assert (cfg.credentials.access_key_id, cfg.credentials.secret_access_key) == ("id", "sec")
    creds.write_text("[1]")
    with pytest.raises(ConfigError, match="JSON object"):
        parse_mount(["s3://b", str(tmp_path), "--credentials-file", str(creds)])


def test_gcs_and_azure_credentials_from_a_file_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = json.dumps({"type": "service_account", "private_key": "PEM"})
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"GOOGLE_SERVICE_ACCOUNT_KEY": key,
                                 "AZURE_STORAGE_ACCOUNT_NAME": "acct",
                                 "AZURE_STORAGE_ACCOUNT_KEY": "akey",
                                 "AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=s"}))
    cfg, _ = parse_mount(["gs://b", str(tmp_path), "--credentials-file", str(creds)])
    c = cfg.credentials
    assert (c.gcs_service_account_key, c.azure_account_name, c.azure_account_key,
            c.azure_sas_token) == (key, "acct", "akey", "sv=1&sig=s")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "fromenv")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "sv=2&sig=t")
    cfg, _ = parse_mount(["az://c", str(tmp_path)])
    assert (cfg.credentials.azure_account_name, cfg.credentials.azure_sas_token) == (
        "fromenv", "sv=2&sig=t")


def test_the_azure_account_comes_from_the_command_line_without_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The account's name is no secret: a flush-only engine started with no credentials
    still opens its az:// store (docs/CONTRACTS.md section 1)."""
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    cfg, _ = parse_mount(["az://c", str(tmp_path), "--account", "acct"])
    assert cfg.credentials.azure_account_name == "acct"
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    cfg, _ = parse_mount(["az://c", str(tmp_path), "--account", "acct"])
    assert cfg.credentials.azure_account_name == "acct"
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "other")
    with pytest.raises(ConfigError, match="--account differs"):
        parse_mount(["az://c", str(tmp_path), "--account", "acct"])


def test_bad_option_is_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "openfiles_cli", "mount", "memory://",
                          str(tmp_path), "--export-delay", "soon"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--export-delay" in out.stderr


def _status(*args: str, stdout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "openfiles_cli", "status", *args],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60)


@pytest.mark.fuse
def test_status_into_a_closed_pipe_prints_no_traceback(mounter: MountFactory,
                                                       file_backend: Backend) -> None:
    """``openfiles status MNT | head``: the reader may leave before the output is written."""
    m = mounter(file_backend)
    for extra in ([], ["--json"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # as `head` does once it has its lines
        try:
            out = _status(str(m.path), "--control-socket", str(m.sock), *extra,
                          stdout=write_end)
        finally:
            os.close(write_end)
        assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr


def test_status_says_the_error_of_an_error_reply(tmp_path: Path) -> None:
    """An engine (or something else on the socket) that answers with an error: its
    message on stderr and status 1, not a report full of ``None``."""
    sock = str(tmp_path / "s.sock")

    async def answer(req: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False, "error": f"unknown op {req.get('op')!r} here"}

    async def main() -> subprocess.CompletedProcess[bytes]:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve, sock, answer))
            done = await trio.run_process(
                [sys.executable, "-m", "openfiles_cli", "status", str(tmp_path),
                 "--control-socket", sock], capture_stdout=True, capture_stderr=True,
                check=False)
            nursery.cancel_scope.cancel()
        return done

    out = trio.run(main)
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"unknown op 'status' here" in out.stderr
