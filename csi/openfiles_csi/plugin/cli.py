"""``openfiles csi``: serve the CSI identity, controller and/or node services over gRPC.

openfiles csi --mode controller|node|all --endpoint unix:///path/csi.sock --node-id NAME
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal

import grpc
from prometheus_client import start_http_server
from prometheus_client.registry import REGISTRY

from openfiles_contracts.endpoint import EndpointPatternError, EndpointPolicy
from openfiles_contracts.event import EventError
from openfiles_csi._proto import csi_pb2_grpc
from openfiles_csi.logsetup import register_secret, setup_logging
from openfiles_csi.plugin.controller import ControllerServicer
from openfiles_csi.plugin.identity import IdentityServicer
from openfiles_csi.plugin.kube import KubeClient, api_configuration
from openfiles_csi.plugin.metrics import EngineCollector
from openfiles_csi.plugin.mounterclient import MounterClient
from openfiles_csi.plugin.node import NodeServicer
from openfiles_csi.plugin.policy import PolicyWatcher
from openfiles_csi.plugin.reporter import Reporter
from openfiles_csi.volumecontext import node_events

log = logging.getLogger("openfiles_csi")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="openfiles csi", description="OpenFiles CSI plugin")
    p.add_argument("--mode", choices=["controller", "node", "all"], default="all")
    p.add_argument("--endpoint", required=True, help="unix:///path/csi.sock")
    p.add_argument("--node-id", default="", help="this node's name (node and all modes)")
    p.add_argument(
        "--mounter-socket",
        default="/run/openfiles/mounter.sock",
        help="unix socket of `openfiles mounter`",
    )
    p.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        help="directory under which staging and target paths may lie "
        "(repeatable; default /var/lib/kubelet)",
    )
    p.add_argument(
        "--flush-timeout",
        type=float,
        default=30.0,
        help="seconds NodeUnstage waits for the final flush",
    )
    p.add_argument(
        "--mount-timeout",
        type=float,
        default=60.0,
        help="seconds NodeStage waits for the engine to serve",
    )
    p.add_argument(
        "--metrics-address",
        default="",
        help="HOST:PORT for the Prometheus endpoint (node side; off when empty)",
    )
    p.add_argument(
        "--allowed-endpoint",
        action="append",
        default=[],
        metavar="PATTERN",
        help="an endpoint volumes may name (controller side): http(s)://HOST[:PORT] or "
        "http(s)://*.SUFFIX[:PORT] (repeatable; none: every endpoint is allowed)",
    )
    p.add_argument(
        "--events-url",
        default="",
        help="NATS server(s) for the mutation events of volumes whose context names no "
        "eventsURL (node side; credentials from OPENFILES_NATS_USER/PASSWORD/TOKEN)",
    )
    p.add_argument("--policy-dir", default="", help="projected ConfigMap openfiles-policies")
    p.add_argument("--policy-interval", type=float, default=5.0, help="seconds between re-reads")
    reports = p.add_argument_group("export reports (node side; off without --report-namespace)")
    reports.add_argument("--report-namespace", default="", help="namespace of the reports")
    reports.add_argument("--kubeconfig", default="", help="default: the pod's account")
    reports.add_argument("--report-interval", type=float, default=2.0, help="seconds")
    reports.add_argument("--report-heartbeat", type=float, default=60.0,
                         help="seconds after which an unchanged report is written again")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if not args.endpoint.startswith("unix://"):
        p.error("--endpoint must be unix:///path")
    if args.mode in {"node", "all"} and not args.node_id:
        p.error("--node-id is required in node and all modes")
    try:
        args.endpoint_policy = EndpointPolicy(args.allowed_endpoint)
    except EndpointPatternError as exc:
        p.error(f"--allowed-endpoint: {exc}")
    try:
        args.node_events = node_events(args.events_url, os.environ)
    except EventError as exc:
        p.error(f"--events-url: {exc}")
    return args


async def serve(args: argparse.Namespace) -> None:
    node_side = args.mode in {"node", "all"}
    server = grpc.aio.server()
    mounter = MounterClient(args.mounter_socket, mount_timeout=args.mount_timeout)
    csi_pb2_grpc.add_IdentityServicer_to_server(
        IdentityServicer(
            controller=args.mode in {"controller", "all"},
            ready=mounter.reachable if node_side else None,
        ),
        server,
    )
    if args.mode in {"controller", "all"}:
        csi_pb2_grpc.add_ControllerServicer_to_server(
            ControllerServicer(args.endpoint_policy), server
        )
    tasks: list[asyncio.Task[None]] = []
    kube = None
    if node_side:
        reporter = None
        if args.report_namespace:
            kube = KubeClient(api_configuration(args.kubeconfig))
            reporter = Reporter(
                args.node_id,
                args.report_namespace,
                mounter,
                kube,
                interval=args.report_interval,
                heartbeat=args.report_heartbeat,
            )
            tasks.append(asyncio.get_running_loop().create_task(reporter.run()))
        node = NodeServicer(
            node_id=args.node_id,
            mounter=mounter,
            allowed_roots=args.allowed_root or ["/var/lib/kubelet"],
            flush_timeout=args.flush_timeout,
            reporter=reporter,
            events=args.node_events,
        )
        csi_pb2_grpc.add_NodeServicer_to_server(node, server)
        if args.metrics_address:
            host, _, port = args.metrics_address.rpartition(":")
            REGISTRY.register(EngineCollector(args.mounter_socket, args.node_id))
            start_http_server(int(port), addr=host or "127.0.0.1")
            log.info("metrics on http://%s/metrics", args.metrics_address)
        if args.policy_dir:
            watcher = PolicyWatcher(args.policy_dir, mounter, args.policy_interval)
            tasks.append(asyncio.get_running_loop().create_task(watcher.run()))
    path = args.endpoint.removeprefix("unix://")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a socket left by a killed predecessor
    server.add_insecure_port(f"unix://{path}")
    await server.start()
    log.info("CSI %s server on %s", args.mode, args.endpoint)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await server.stop(grace=5)
    if kube is not None:
        kube.close()
    log.info("CSI server stopped; mounts stay with the mounter")


def main(argv: list[str]) -> int:
    args = parse_args(argv[1:])
    setup_logging(args.log_level)
    register_secret(*args.node_events.env.values())
    asyncio.run(serve(args))
    return 0
