from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from openfiles_engine.cli import parse_mount
from openfiles_engine.config import ConfigError


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


def test_bad_option_is_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "openfiles_cli", "mount", "memory://",
                          str(tmp_path), "--export-delay", "soon"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--export-delay" in out.stderr
