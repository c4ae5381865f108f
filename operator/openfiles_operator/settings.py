"""Operator settings, parsed once at the edge (cli.py) and passed down as one object."""

from __future__ import annotations

from dataclasses import dataclass, field

from openfiles_contracts.endpoint import EndpointPolicy


@dataclass(frozen=True)
class Settings:
    policy_namespace: str
    """Namespace of the policy ConfigMap: the namespace the CSI node plugin runs in."""

    policy_config_map: str = "openfiles-policies"
    """Name of the ConfigMap that carries effective policies to nodes (docs/CONTRACTS.md 4)."""

    endpoint_policy: EndpointPolicy = field(default_factory=EndpointPolicy)
    """Endpoints volumes may name; the empty default allows every one (docs/OPERATOR.md)."""

    bucket_timeout: float = 10.0
    """Seconds allowed for the one list call that proves a bucket reachable, and for each
    delete batch. Long enough for a distant region, short enough to keep handlers moving."""

    retry_delay: float = 30.0
    """Seconds before retrying after a missing Secret, an unreachable bucket or a taken name:
    problems that heal without the spec changing."""

    conflict_delay: float = 2.0
    """Seconds before retrying after an API conflict (409): fresh data usually fixes it at once."""

    pod_wait_delay: float = 10.0
    """Seconds between checks while pods still use a deleted volume's claim."""

    resync_interval: float = 60.0
    """Seconds between full recomputations of every volume's effective policy. Catches what no
    event announces, such as namespace label changes."""

    export_check_interval: float = 10.0
    """Seconds between re-evaluations of each volume's Exported condition. Reports arrive
    only when something changes; the age of dirty data grows without one."""

    export_margin: float = 30.0
    """Seconds beyond the export delay that data may stay dirty before Exported turns
    False (ExportLagging): an export of a large file, or a backoff, takes a while."""

    conflict_window: float = 600.0
    """Seconds Exported stays False (Conflicts) after a local version went to lost+found."""

    report_stale_after: float = 600.0
    """Seconds after which a report no node plugin refreshed is deleted (plugins rewrite
    theirs at least every minute)."""
