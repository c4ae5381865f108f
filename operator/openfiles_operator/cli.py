"""``openfiles operator``: run the kopf operator with leader election and a liveness endpoint.

Start-up order: serve /healthz, wait (as a standby) until this replica holds
the Lease, then run kopf until SIGTERM or until leadership is lost. Losing the
Lease stops kopf and exits with status 1, so the pod restarts as a standby
rather than reconciling next to a new leader.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
from typing import Any

import kopf

# kopf.operator(vault=) is public but its type is not exported: kopf has no public way to
# own the Vault. Without our own (closed in operate), kopf's cancelled cleanup leaves an
# aiohttp session unclosed at stop. A kopf release that moves it fails at import, in
# tests/operator/test_cli.py, not in production. See docs/OPERATOR.md.
from kopf._cogs.structs.credentials import Vault

from openfiles_contracts.endpoint import EndpointPatternError, EndpointPolicy
from openfiles_operator.handler import configure, register
from openfiles_operator.kube import Kube, api_configuration, connection_info
from openfiles_operator.lease import LeaderElection, LostLeadershipError
from openfiles_operator.liveness import Liveness
from openfiles_operator.settings import Settings

log = logging.getLogger("openfiles_operator")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="openfiles operator",
        description="Run the kopf operator with leader election and a liveness endpoint.",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", "openfiles"),
        help="namespace of the Lease and the policy ConfigMap "
        "(default: $POD_NAMESPACE, else openfiles)",
    )
    parser.add_argument(
        "--policy-config-map",
        default="openfiles-policies",
        help="ConfigMap carrying effective policies to nodes",
    )
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig file; default: in-cluster service account",
    )
    parser.add_argument(
        "--liveness",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address of the /healthz endpoint ('' disables it)",
    )
    parser.add_argument("--lease", default="openfiles-operator", help="name of the Lease")
    parser.add_argument(
        "--identity",
        default=socket.gethostname(),
        help="this replica's name in the Lease (default: host name)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=int,
        default=15,
        metavar="SECONDS",
        help="a leader that has not renewed for this long is replaced",
    )
    parser.add_argument(
        "--bucket-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="bound on the bucket list call and each delete batch",
    )
    parser.add_argument(
        "--retry-delay",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="retry delay for a missing Secret or an unreachable bucket",
    )
    parser.add_argument(
        "--pod-wait-delay",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="re-check delay while pods use a deleted volume",
    )
    parser.add_argument(
        "--resync-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="period of the full policy resync and the PV/claim check",
    )
    parser.add_argument(
        "--allowed-endpoint",
        action="append",
        default=[],
        metavar="PATTERN",
        help="an endpoint volumes may name: http(s)://HOST[:PORT] or http(s)://*.SUFFIX[:PORT] "
        "(repeatable; none: every endpoint is allowed)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    try:
        args.endpoint_policy = EndpointPolicy(args.allowed_endpoint)
    except EndpointPatternError as exc:
        parser.error(f"--allowed-endpoint: {exc}")
    return args


def in_cluster_login(info: kopf.ConnectionInfo | None) -> kopf.ConnectionInfo | None:
    """The pod's service account, at the address the kubelet gives every pod.

    kopf's own service-account login names ``https://kubernetes.default.svc``,
    which needs cluster DNS; the kubelet also sets ``KUBERNETES_SERVICE_HOST``
    and ``KUBERNETES_SERVICE_PORT`` in every container, with or without DNS
    (the API server's certificate covers that address). This uses them, as the
    Kubernetes client's in-cluster configuration does, so the operator runs on
    a cluster without DNS too.
    """
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    if info is None or not host:
        return info
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return dataclasses.replace(info, server=f"https://{host}:{port}")


def build_registry(kube: Kube, settings: Settings, configuration: Any) -> kopf.OperatorRegistry:
    """Every handler, plus a login with ``configuration`` (None: the pod's service account,
    re-read by kopf as the token rotates)."""
    registry = kopf.OperatorRegistry()
    register(registry, kube, settings)

    @kopf.on.login(registry=registry, id="login")
    def login(**kwargs: Any) -> Any:
        if configuration is None:
            return in_cluster_login(kopf.login_with_service_account(**kwargs))
        return connection_info(configuration)

    return registry


async def operate(
    configuration: Any,
    settings: Settings,
    stop_flag: Any,
    ready_flag: Any = None,
    in_cluster: bool = False,
) -> None:
    """Run kopf with every handler until ``stop_flag`` is set (no leader election here)."""
    kube = Kube.connect(configuration)
    kopf_settings = kopf.OperatorSettings()
    configure(kopf_settings)
    registry = build_registry(kube, settings, None if in_cluster else configuration)
    # Our own vault, closed again below: kopf skips closing its HTTP sessions when its
    # cleanup stage is cut short, and an unclosed session leaks its connections.
    vault = Vault()
    try:
        await kopf.operator(
            registry=registry,
            settings=kopf_settings,
            clusterwide=True,
            standalone=True,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            vault=vault,
        )
    finally:
        await vault.close()
        # TLS connections finish closing in the background; leave them a moment before the
        # event loop ends (aiohttp's advice for a graceful shutdown), or their sockets leak.
        await asyncio.sleep(0.25)
        kube.close()


async def run(args: argparse.Namespace) -> int:
    settings = Settings(
        policy_namespace=args.namespace,
        policy_config_map=args.policy_config_map,
        endpoint_policy=args.endpoint_policy,
        bucket_timeout=args.bucket_timeout,
        retry_delay=args.retry_delay,
        pod_wait_delay=args.pod_wait_delay,
        resync_interval=args.resync_interval,
    )
    configuration = api_configuration(args.kubeconfig)
    kube = Kube.connect(configuration)
    renew = max(1.0, args.lease_seconds / 3)
    liveness = Liveness(max_age=renew * 3 + 10)
    server = None
    if args.liveness:
        host, _, port = args.liveness.rpartition(":")
        server = await liveness.serve(host or "0.0.0.0", int(port))
    election = LeaderElection(
        kube,
        args.namespace,
        args.lease,
        args.identity,
        lease_seconds=args.lease_seconds,
        renew_seconds=renew,
        on_tick=liveness.beat,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        acquiring = asyncio.create_task(election.acquire())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            acquiring.cancel()
            return 0
        operator = asyncio.create_task(
            operate(configuration, settings, stop, in_cluster=not args.kubeconfig)
        )
        holding = asyncio.create_task(election.hold())
        await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
        lost = holding.done() and isinstance(holding.exception(), LostLeadershipError)
        if lost:
            log.error("leadership lost; stopping the operator")
        stop.set()
        await operator
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError, LostLeadershipError):
            await holding
        await election.release()
        return 1 if lost else 0
    finally:
        stopping.cancel()
        if server is not None:
            server.close()
        kube.close()


def main(argv: list[str]) -> int:
    """Entry point of ``openfiles operator``; ``argv[0]`` is the subcommand name."""
    args = parse_args(argv[1:])
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(run(args))
