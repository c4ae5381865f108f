"""``openfiles mount | flush | status``: the engine's command line (docs/CONTRACTS.md §1)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from openfiles_contracts import readiness
from openfiles_contracts.event import (
    ENV_CREDS,
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_USER,
    EventError,
    check_url,
)
from openfiles_contracts.jsonline import request
from openfiles_engine.config import (
    ConfigError,
    Credentials,
    EventsConfig,
    MountConfig,
    Policy,
    parse_duration,
    parse_mode,
    parse_quantity,
)
from openfiles_engine.control import default_socket


def _mount_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="openfiles mount", description="Mount a bucket.")
    p.add_argument("source", help="s3://bucket/prefix, gs://, az://, file:///dir or memory://")
    p.add_argument("mountpoint")
    p.add_argument("--endpoint", default="")
    p.add_argument("--region", default="")
    p.add_argument("--account", default="",
                   help="az:// only: the storage account's name (not a secret; else "
                   "AZURE_STORAGE_ACCOUNT_NAME from the credentials)")
    p.add_argument("--credentials-file", default="",
                   help="JSON with the credentials' environment variables: AWS_ACCESS_KEY_ID, "
                   "AWS_SECRET_ACCESS_KEY[, AWS_SESSION_TOKEN]; GOOGLE_SERVICE_ACCOUNT_KEY; "
                   "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or "
                   "AZURE_STORAGE_SAS_TOKEN (docs/CONTRACTS.md)")
    p.add_argument("--cache-dir", default="")
    p.add_argument("--cache-size", default="10Gi")
    p.add_argument("--cache-ttl", default="24h")
    p.add_argument("--metadata-ttl", default="5s")
    p.add_argument("--export-delay", default="60s")
    p.add_argument("--uid", type=int, default=os.getuid())
    p.add_argument("--gid", type=int, default=os.getgid())
    p.add_argument("--file-mode", default="0644")
    p.add_argument("--dir-mode", default="0755")
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--allow-other", action="store_true")
    p.add_argument("--fsid", default="")
    p.add_argument("--control-socket", default="")
    p.add_argument("--unmount-timeout", default="30s")
    p.add_argument("--foreground", action="store_true",
                   help="stay attached (without it the engine detaches once mounted)")
    p.add_argument("--flush-only", action="store_true",
                   help="mount nothing: export what the cache dir holds (at most "
                   "--unmount-timeout), print what is left as JSON, exit 0 if nothing is, "
                   "3 if something stays in the cache")
    p.add_argument("--events", default="",
                   help="nats://host:port (or tls://, several with commas): publish this "
                   "mount's changes and drop peers' changes from the cache at once "
                   "(docs/SEMANTICS.md, Consistency). Credentials from "
                   "--events-credentials-file or the environment: OPENFILES_NATS_USER and "
                   "OPENFILES_NATS_PASSWORD, OPENFILES_NATS_TOKEN, or OPENFILES_NATS_CREDS "
                   "(the path of a NATS .creds file)")
    p.add_argument("--events-credentials-file", default="",
                   help="JSON with OPENFILES_NATS_USER, OPENFILES_NATS_PASSWORD, "
                   "OPENFILES_NATS_TOKEN or OPENFILES_NATS_CREDS (instead of the environment)")
    p.add_argument("--events-ca", default="",
                   help="CA bundle of the NATS server's certificate (implies TLS)")
    p.add_argument("--log-level", default="INFO")
    return p


def _credentials(path: str, account: str = "") -> Credentials:
    """The credentials from the environment or ``path``; ``account`` (``--account``) is
    the Azure account's name, which needs no secret and wins over none, but a different
    AZURE_STORAGE_ACCOUNT_NAME is refused."""
    env: dict[str, Any] = dict(os.environ)
    if path:
        try:
            with open(path) as f:
                env = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--credentials-file {path}: cannot read JSON ({exc})") from None
        if not isinstance(env, dict):
            raise ConfigError(f"--credentials-file {path}: must hold a JSON object")
    named = str(env.get("AZURE_STORAGE_ACCOUNT_NAME", ""))
    if account and named and named != account:
        raise ConfigError("--account differs from AZURE_STORAGE_ACCOUNT_NAME")
    return Credentials(
        access_key_id=str(env.get("AWS_ACCESS_KEY_ID", "")),
        secret_access_key=str(env.get("AWS_SECRET_ACCESS_KEY", "")),
        session_token=str(env.get("AWS_SESSION_TOKEN", "")),
        gcs_service_account_key=str(env.get("GOOGLE_SERVICE_ACCOUNT_KEY", "")),
        azure_account_name=account or named,
        azure_account_key=str(env.get("AZURE_STORAGE_ACCOUNT_KEY", "")),
        azure_sas_token=str(env.get("AZURE_STORAGE_SAS_TOKEN", "")),
    )


def _events(args: argparse.Namespace) -> EventsConfig | None:
    if not args.events:
        if args.events_credentials_file or args.events_ca:
            raise ConfigError("--events-credentials-file and --events-ca need --events")
        return None
    try:
        url = check_url(args.events)
    except EventError as exc:
        raise ConfigError(f"--events: {exc}") from None
    env: dict[str, Any] = dict(os.environ)
    path = args.events_credentials_file
    if path:
        try:
            with open(path) as f:
                env = json.load(f)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--events-credentials-file {path}: cannot read JSON "
                              f"({type(exc).__name__})") from None
        if not isinstance(env, dict):
            raise ConfigError(f"--events-credentials-file {path}: must hold a JSON object")
    cfg = EventsConfig(url=url, user=str(env.get(ENV_USER, "")),
                       password=str(env.get(ENV_PASSWORD, "")),
                       token=str(env.get(ENV_TOKEN, "")), creds=str(env.get(ENV_CREDS, "")),
                       ca=os.path.abspath(args.events_ca) if args.events_ca else "")
    if cfg.password and not cfg.user:
        raise ConfigError(f"--events: {ENV_PASSWORD} needs {ENV_USER}")
    for file, name in ((cfg.creds, ENV_CREDS), (cfg.ca, "--events-ca")):
        if file and not os.path.isfile(file):
            raise ConfigError(f"--events: {name}: no file at {file}")
    if cfg.creds:
        cfg.creds = os.path.abspath(cfg.creds)
    return cfg


def parse_mount(argv: list[str]) -> tuple[MountConfig, argparse.Namespace]:
    args = _mount_parser().parse_args(argv)
    mountpoint = os.path.abspath(args.mountpoint)
    cache_dir = args.cache_dir or os.path.join(
        os.path.expanduser("~/.cache/openfiles"), os.path.basename(default_socket(mountpoint))[:-5])
    policy = Policy(
        cache_size=parse_quantity(args.cache_size, "--cache-size"),
        cache_ttl=parse_duration(args.cache_ttl, "--cache-ttl"),
        metadata_ttl=parse_duration(args.metadata_ttl, "--metadata-ttl"),
        export_delay=parse_duration(args.export_delay, "--export-delay"),
    )
    cfg = MountConfig(
        source=args.source, mountpoint=mountpoint, cache_dir=os.path.abspath(cache_dir),
        endpoint=args.endpoint, region=args.region,
        credentials=_credentials(args.credentials_file, args.account), policy=policy, uid=args.uid,
        gid=args.gid, file_mode=parse_mode(args.file_mode, "--file-mode"),
        dir_mode=parse_mode(args.dir_mode, "--dir-mode"), read_only=args.read_only,
        allow_other=args.allow_other,
        control_socket=args.control_socket or default_socket(mountpoint),
        unmount_timeout=parse_duration(args.unmount_timeout, "--unmount-timeout"),
        events=_events(args),
    )
    if args.fsid:
        cfg.fsid = args.fsid
    return cfg, args


def mount(argv: list[str]) -> int:
    try:
        cfg, args = parse_mount(argv)
    except ConfigError as exc:
        print(f"openfiles mount: {exc}", file=sys.stderr)
        return 2
    if args.flush_only:
        logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return run_flush_only(cfg)
    if not args.foreground:
        # Resolved now, before the mount exists: mountinfo shows resolved paths.
        target = os.path.realpath(cfg.mountpoint)
        if os.fork() != 0:
            return _wait_ready(target, cfg.control_socket)
        _detach(cfg.cache_dir)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_mount(cfg)


def _detach(cache_dir: str) -> None:
    """Become a daemon: own session, no terminal, log to ``<cache-dir>/engine.log``."""
    os.setsid()
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    log_fd = os.open(os.path.join(cache_dir, "engine.log"),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null_fd)
    os.close(log_fd)


def run_mount(cfg: MountConfig) -> int:
    """Mount and serve in this process until SIGTERM/SIGINT or an external unmount."""
    import trio

    from openfiles_engine.bucket.store import Store, StoreError
    from openfiles_engine.cache.malloc import keep_freed_memory
    from openfiles_engine.engine import Engine
    from openfiles_engine.mountpoint import MountpointError

    async def main() -> int:
        store = Store.open(cfg.source, endpoint=cfg.endpoint, region=cfg.region,
                           credentials=cfg.credentials)
        return await Engine(cfg, store).run()

    keep_freed_memory()  # before any thread (obstore's included) has its own arena
    try:
        return trio.run(main)
    except (ConfigError, MountpointError, StoreError) as exc:
        print(f"openfiles mount: {exc}", file=sys.stderr)
        return 1


FLUSH_LEFT = 3
"""Exit status of ``--flush-only`` when dirty data stays in the cache."""


def run_flush_only(cfg: MountConfig) -> int:
    """Export a cache dir's dirty files without mounting; print what is left as one JSON line.

    The line (stdout) is :meth:`Engine.flush_only`'s reply. Exit status 0 when nothing is
    left, :data:`FLUSH_LEFT` when something is, 1 when the cache dir or store cannot be
    opened (nothing printed; the cache is untouched).
    """
    import trio

    from openfiles_engine.bucket.store import Store, StoreError
    from openfiles_engine.engine import Engine

    async def main() -> dict[str, Any]:
        store = Store.open(cfg.source, endpoint=cfg.endpoint, region=cfg.region,
                           credentials=cfg.credentials)
        return await Engine(cfg, store).flush_only()

    try:
        left = trio.run(main)
    except (ConfigError, StoreError) as exc:
        print(f"openfiles mount --flush-only: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(left), flush=True)
    return 0 if not (left["dirty_files"] or left["pending_exports"]) else FLUSH_LEFT


def _wait_ready(mountpoint: str, control_socket: str, timeout: float = 60.0) -> int:
    if readiness.wait(mountpoint, control_socket, timeout, poll=0.1):
        return 0
    print("openfiles mount: the engine did not become ready", file=sys.stderr)
    return 1


def _socket_args(prog: str, argv: list[str], extra: bool) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("mountpoint")
    p.add_argument("--control-socket", default="")
    if extra:
        p.add_argument("--timeout", type=float, default=300.0)
    else:
        p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def flush(argv: list[str]) -> int:
    args = _socket_args("openfiles flush", argv, extra=True)
    path = args.control_socket or default_socket(args.mountpoint)
    try:
        reply = request(path, {"op": "flush", "timeout": args.timeout}, timeout=args.timeout + 10)
    except OSError as exc:
        print(f"openfiles flush: no engine answers at {path}: {exc}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"openfiles flush: {reply.get('error')}", file=sys.stderr)
        return 1
    return 0


def status(argv: list[str]) -> int:
    """Print the engine's status; 1 (and the reason on stderr) if it cannot be had.

    A reader that leaves early (``openfiles status MNT | head``) is no error
    worth a traceback: the rest of the output is dropped quietly.
    """
    args = _socket_args("openfiles status", argv, extra=False)
    path = args.control_socket or default_socket(args.mountpoint)
    try:
        reply = request(path, {"op": "status"}, timeout=10)
    except OSError as exc:
        print(f"openfiles status: no engine answers at {path}: {exc}", file=sys.stderr)
        return 1
    if not reply.get("ok") or not isinstance(reply.get("status"), dict):
        print(f"openfiles status: {reply.get('error') or 'no status in the reply'}",
              file=sys.stderr)
        return 1
    try:
        _print_status(args, reply["status"])
        sys.stdout.flush()  # here, not at exit, where a closed pipe cannot be caught
    except BrokenPipeError:
        # Python's advice: point stdout at /dev/null so the flush at exit is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def _print_status(args: argparse.Namespace, st: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return
    print(f"mount:             {os.path.abspath(args.mountpoint)}")
    print(f"source:            {st.get('source')}")
    for key in ("dirty_files", "dirty_bytes", "pending_exports", "conflicts", "cache_bytes",
                "hit_ratio", "fetched_bytes", "dropped_bytes", "export_errors",
                "last_export_error", "conditional_writes"):
        value = st.get(key)
        if key == "hit_ratio" and isinstance(value, float):
            value = f"{value:.1%}"
        print(f"{key + ':':<19}{value}")
    events = st.get("events")
    if isinstance(events, dict):
        state = "connected" if events.get("connected") else \
            f"disconnected ({events.get('error')}); the metadata TTL applies"
        print(f"{'events:':<19}{events.get('url')} {state}")
    else:
        print(f"{'events:':<19}off (the metadata TTL bounds staleness)")


def main(argv: list[str]) -> int:
    """Entry point of ``openfiles mount|flush|status``; ``argv[0]`` is the subcommand."""
    command, rest = argv[0], argv[1:]
    if command == "mount":
        return mount(rest)
    if command == "flush":
        return flush(rest)
    if command == "status":
        return status(rest)
    print(f"openfiles_engine.cli: unknown command {command!r}", file=sys.stderr)
    return 2
