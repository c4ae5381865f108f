"""Typed bodies of OpenFilesVolume, OpenFilesCachePolicy and OpenFilesNodeReport.

These TypedDicts mirror the CRD schemas in ``charts/openfiles/crds/``, field for
field: a key that is ``NotRequired`` here is optional there, and the reverse.
``tests/operator/test_body.py`` walks both and fails when they drift, so the
schema (what the API server enforces) and this file (what the code reads) stay
one definition in two languages.

Bodies arrive defaulted by the API server: every field with a schema default is
present, so the code reads those with ``[]`` and only the truly optional ones
with ``.get``.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

GROUP = "openfiles.io"
VERSION = "v1alpha1"
VOLUME_PLURAL = "openfilesvolumes"
POLICY_PLURAL = "openfilescachepolicies"
REPORT_PLURAL = "openfilesnodereports"


class SecretRef(TypedDict):
    name: str
    namespace: NotRequired[str]


class BucketSpec(TypedDict):
    url: str
    endpoint: NotRequired[str]
    region: NotRequired[str]
    account: NotRequired[str]
    credentialsSecretRef: SecretRef


class CacheSpec(TypedDict):
    size: NotRequired[str]
    ttl: NotRequired[str]
    metadataTTL: NotRequired[str]


class ExportSpec(TypedDict):
    delay: NotRequired[str]


class MountOptionsSpec(TypedDict):
    uid: NotRequired[int]
    gid: NotRequired[int]
    fileMode: NotRequired[str]
    dirMode: NotRequired[str]


class EventsSpec(TypedDict):
    natsURL: NotRequired[str]


class VolumeSpec(TypedDict):
    bucket: BucketSpec
    cache: NotRequired[CacheSpec]
    export: NotRequired[ExportSpec]
    accessModes: NotRequired[list[str]]
    capacity: NotRequired[str]
    reclaimPolicy: NotRequired[Literal["Retain", "Delete"]]
    mountOptions: NotRequired[MountOptionsSpec]
    events: NotRequired[EventsSpec]


class Condition(TypedDict):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: NotRequired[str]
    message: NotRequired[str]
    lastTransitionTime: NotRequired[str]
    observedGeneration: NotRequired[int]


class EffectivePolicyStatus(TypedDict):
    cacheSize: NotRequired[int]
    cacheTTL: NotRequired[int]
    metadataTTL: NotRequired[int]
    exportDelay: NotRequired[int]
    policy: NotRequired[str]


class KeptCacheFields(TypedDict):
    """What a node's report and its line in the volume's status say about lost+found
    and about a cache the node keeps after the unstage (stranded dirty data)."""

    lostFoundFiles: NotRequired[int]
    lostFoundBytes: NotRequired[int]
    cacheKept: NotRequired[bool]
    stranded: NotRequired[bool]
    strandedSince: NotRequired[str]
    strandedError: NotRequired[str]


class EventsFields(TypedDict):
    """What a node's report and its line in the volume's status say about mutation
    events (present only when the volume has them)."""

    eventsConnected: NotRequired[bool]
    eventsError: NotRequired[str]


class NodeExportStatus(KeptCacheFields, EventsFields):
    """One node's line in an OpenFilesVolume's status, from its OpenFilesNodeReport."""

    node: str
    summary: str
    engineAlive: bool
    dirtyFiles: NotRequired[int]
    dirtyBytes: NotRequired[int]
    dirtySince: NotRequired[str]
    journalEntries: NotRequired[int]
    conflicts: NotRequired[int]
    lastExportError: NotRequired[str]
    lastExportErrorTime: NotRequired[str]
    cacheBytes: NotRequired[int]
    reportTime: str


class VolumeStatus(TypedDict):
    phase: NotRequired[str]
    observedGeneration: NotRequired[int]
    pvName: NotRequired[str]
    pvcName: NotRequired[str]
    volumeHandle: NotRequired[str]
    effectivePolicy: NotRequired[EffectivePolicyStatus]
    dirtyBytes: NotRequired[int]
    conflicts: NotRequired[int]
    nodeCount: NotRequired[int]
    nodes: NotRequired[list[NodeExportStatus]]
    conditions: NotRequired[list[Condition]]


class LabelRequirement(TypedDict):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: NotRequired[list[str]]


class LabelSelector(TypedDict):
    matchLabels: NotRequired[dict[str, str]]
    matchExpressions: NotRequired[list[LabelRequirement]]


class PolicySpec(TypedDict):
    namespaceSelector: NotRequired[LabelSelector]
    volumeSelector: NotRequired[LabelSelector]
    ttl: NotRequired[str]
    maxSize: NotRequired[str]
    metadataTTL: NotRequired[str]
    priority: NotRequired[int]


class PolicyStatus(TypedDict):
    matchedVolumes: NotRequired[int]
    observedGeneration: NotRequired[int]
    conditions: NotRequired[list[Condition]]


class Metadata(TypedDict):
    name: str
    namespace: NotRequired[str]
    uid: str
    generation: NotRequired[int]
    labels: NotRequired[dict[str, str]]


class VolumeBody(TypedDict):
    apiVersion: str
    kind: str
    metadata: Metadata
    spec: VolumeSpec
    status: NotRequired[VolumeStatus]


class PolicyBody(TypedDict):
    apiVersion: str
    kind: str
    metadata: Metadata
    spec: PolicySpec
    status: NotRequired[PolicyStatus]


class ObjectRef(TypedDict):
    namespace: str
    name: str


class NodeReportSpec(KeptCacheFields, EventsFields):
    """Written by the CSI node plugin (csi/openfiles_csi/plugin/report.py builds it)."""

    nodeName: str
    volumeHandle: str
    pvName: NotRequired[str]
    claim: NotRequired[ObjectRef]
    volume: NotRequired[ObjectRef]
    engineAlive: bool
    dirtyFiles: NotRequired[int]
    dirtyBytes: NotRequired[int]
    dirtySince: NotRequired[str]
    journalEntries: NotRequired[int]
    conflicts: NotRequired[int]
    conflictsSinceLastReport: NotRequired[int]
    lastConflictTime: NotRequired[str]
    lastExportError: NotRequired[str]
    lastExportErrorTime: NotRequired[str]
    cacheBytes: NotRequired[int]
    exportDelaySeconds: NotRequired[int]
    reportTime: str


class NodeReportBody(TypedDict):
    apiVersion: str
    kind: str
    metadata: Metadata
    spec: NodeReportSpec
