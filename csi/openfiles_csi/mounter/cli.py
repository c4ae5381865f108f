"""``openfiles mounter --socket PATH --state-dir DIR``: serve the mounter on a unix socket.

Protocol: a client connects, sends one JSON object on one line, reads one JSON
object on one line. The socket is created mode 0600: whoever can talk to it can
mount and unmount, so only root (the node plugin) may.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys

from openfiles_contracts.jsonline import MAX_MOUNTER_REQUEST, decode_request, encode
from openfiles_csi.logsetup import setup_logging
from openfiles_csi.mounter import process
from openfiles_csi.mounter.mounts import Mounter
from openfiles_csi.mounter.supervisor import Supervisor

log = logging.getLogger("openfiles_csi.mounter.mounts")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="openfiles mounter", description=__doc__.split("\n")[0])
    p.add_argument("--socket", required=True, help="unix socket to listen on")
    p.add_argument("--state-dir", required=True, help="directory for records, engine logs, sockets")
    p.add_argument(
        "--cache-root",
        default="",
        help="node-local root of the per-volume cache dirs (default STATE_DIR/cache)",
    )
    p.add_argument(
        "--engine-command",
        default="",
        help="command that provides the `mount` subcommand (default: this openfiles)",
    )
    p.add_argument(
        "--stop-timeout",
        type=float,
        default=30.0,
        help="seconds an engine gets to exit after SIGTERM before SIGKILL",
    )
    p.add_argument(
        "--stop-engines-on-exit",
        action="store_true",
        help="on SIGTERM, stop the engines (they export and unmount) before exiting; for a "
        "mounter that is PID 1 of a container, whose exit kills them anyway",
    )
    p.add_argument(
        "--supervise",
        action="store_true",
        help="run the mounter as a child and restart it when it dies; engines outlive it "
        "(for a container whose PID 1 this is: see openfiles_csi.mounter.supervisor)",
    )
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    engine = (
        shlex.split(args.engine_command) if args.engine_command else process.DEFAULT_ENGINE_COMMAND
    )
    mounter = Mounter(
        state_dir=args.state_dir,
        cache_root=args.cache_root or os.path.join(args.state_dir, "cache"),
        engine_command=engine,
        stop_timeout=args.stop_timeout,
    )
    await mounter.adopt()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                req = decode_request(line)
            except ValueError:
                reply = {"ok": False, "code": "invalid", "error": "request must be one JSON object"}
            else:
                reply = await mounter.handle(req)
            writer.write(encode(reply))
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.socket)
    os.makedirs(os.path.dirname(args.socket), exist_ok=True)
    old_umask = os.umask(0o077)
    try:
        server = await asyncio.start_unix_server(
            client, path=args.socket, limit=MAX_MOUNTER_REQUEST
        )
    finally:
        os.umask(old_umask)
    os.chmod(args.socket, 0o600)  # the umask already kept others out; no execute bit either
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("mounter listening on %s", args.socket)
    async with server:
        await stop.wait()
    if args.stop_engines_on_exit:
        log.info("stopping the engines: they export their dirty files and unmount")
        await mounter.stop_engines()
    await mounter.close()
    log.info(
        "mounter stopped; %s",
        "engines stopped" if args.stop_engines_on_exit else "engines keep running",
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv[1:])
    args.socket = os.path.abspath(args.socket)
    setup_logging(args.log_level)
    if args.supervise:
        child = [a for a in argv[1:] if a != "--supervise"]
        return Supervisor([sys.executable, "-m", "openfiles_cli", argv[0], *child]).run()
    asyncio.run(serve(args))
    return 0
