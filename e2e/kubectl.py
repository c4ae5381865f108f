"""kubectl and helm, as the e2e scenarios use them: a user's own tools, one kubeconfig.

Every call is a subprocess of the real binaries built by the tool harness, so a
scenario does exactly what a user types. Errors carry the command and its
stderr. Nothing here knows whether the cluster is the local one or kind.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class CommandError(RuntimeError):
    """A kubectl or helm command exited non-zero."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {returncode}: {stderr.strip()[-2000:]}")
        self.returncode = returncode
        self.stderr = stderr


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    """Call ``probe`` until it returns neither None nor False; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except CommandError as exc:
            value, last = None, exc
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}"
                + (f" (last error: {last})" if last else "")
            )
        time.sleep(every)


class Kubectl:
    """kubectl and helm against one kubeconfig."""

    def __init__(self, kubectl: Path, helm: Path, kubeconfig: Path) -> None:
        self.kubectl = kubectl
        self.helm_binary = helm
        self.kubeconfig = kubeconfig

    def _run(self, argv: list[str], stdin: str | None = None, timeout: float = 300) -> str:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise CommandError(argv, proc.returncode, proc.stderr)
        return proc.stdout

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 300) -> str:
        """Run ``kubectl ARGS`` and return its stdout."""
        return self._run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args], stdin, timeout
        )

    def helm(self, *args: str, timeout: float = 600) -> str:
        """Run ``helm ARGS`` and return its stdout."""
        return self._run(
            [str(self.helm_binary), "--kubeconfig", str(self.kubeconfig), *args], None, timeout
        )

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]]) -> None:
        """``kubectl apply -f -`` of YAML text, one object, or a list of objects (as JSON)."""
        if isinstance(manifest, list):
            manifest = {"apiVersion": "v1", "kind": "List", "items": manifest}
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self("apply", "-f", "-", stdin=text)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as a dict, or None when it does not exist."""
        argv = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            argv += ["-n", namespace]
        out = self(*argv)
        return json.loads(out) if out.strip() else None

    def items(
        self, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Every object of a kind (in a namespace, or all namespaces when None)."""
        argv = ["get", kind, "-o", "json"]
        argv += ["-n", namespace] if namespace else ["-A"]
        if selector:
            argv += ["-l", selector]
        return list(json.loads(self(*argv))["items"])

    def delete(
        self,
        kind: str,
        name: str,
        namespace: str | None = None,
        wait: bool = True,
        timeout: float = 120,
    ) -> None:
        argv = [
            "delete",
            kind,
            name,
            "--ignore-not-found",
            f"--wait={str(wait).lower()}",
            f"--timeout={int(timeout)}s",
        ]
        if namespace:
            argv += ["-n", namespace]
        self(*argv, timeout=timeout + 30)

    def pod_phase(self, name: str, namespace: str) -> str | None:
        pod = self.get("pod", name, namespace)
        return None if pod is None else str(pod.get("status", {}).get("phase"))

    def wait_pod(
        self, name: str, namespace: str, phases: Sequence[str], timeout: float = 180
    ) -> str:
        """Wait until the pod is in one of ``phases``; return the phase. A pod that ends in
        another terminal phase fails at once, with its logs."""

        def probe() -> str | None:
            phase = self.pod_phase(name, namespace)
            if phase in phases:
                return phase
            if phase in ("Succeeded", "Failed"):
                raise AssertionError(
                    f"pod {namespace}/{name} ended {phase}, wanted {phases}:\n"
                    f"{self.logs(name, namespace)}"
                )
            return None

        return wait_for(f"pod {namespace}/{name} to be {'/'.join(phases)}", probe, timeout)

    def logs(
        self, name: str, namespace: str, container: str | None = None, previous: bool = False
    ) -> str:
        argv = ["logs", name, "-n", namespace, "--tail=200"]
        if container:
            argv += ["-c", container]
        if previous:
            argv.append("--previous")
        try:
            return self(*argv)
        except CommandError as exc:
            return f"(no logs: {exc})"

    def exec(
        self,
        name: str,
        namespace: str,
        *command: str,
        container: str | None = None,
        timeout: float = 300,
    ) -> str:
        argv = ["exec", name, "-n", namespace]
        if container:
            argv += ["-c", container]
        return self(*argv, "--", *command, timeout=timeout)

    def events(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        """Events whose involvedObject is ``kind/name``, oldest first."""
        out = self(
            "get",
            "events",
            "-n",
            namespace,
            "-o",
            "json",
            "--field-selector",
            f"involvedObject.kind={kind},involvedObject.name={name}",
        )
        items = json.loads(out)["items"]
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
