"""An engine's status as a report spec, and the Event bodies (plugin/report.py)."""

from __future__ import annotations

from typing import Any

from openfiles_csi.logsetup import register_secret
from openfiles_csi.plugin import report

NOW = 1_750_000_000.0
PV = {"metadata": {"name": "ofv-ns-data-12345678",
                   "labels": {"openfiles.io/volume-uid": "u-1"},
                   "annotations": {"openfiles.io/volume": "ns/data"}},
      "spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "c-1"}}}


def status(**extra: Any) -> dict[str, Any]:
    return {"dirty_files": 2, "dirty_bytes": 10, "journal_entries": 1, "conflicts": 3,
            "cache_bytes": 99, "oldest_dirty_seconds": 12.0, "policy": {"export_delay": 60},
            "last_export_error": None, "recent_conflicts": [], **extra}


def test_target_of_an_operator_pv_and_of_a_provisioned_one() -> None:
    target = report.target_of(PV)
    assert target.volume == report.Ref("openfiles.io/v1alpha1", "OpenFilesVolume", "ns", "data",
                                       "u-1")
    assert target.subject is target.volume
    provisioned = report.target_of({"metadata": {"name": "pvc-1"}, "spec": PV["spec"]})
    assert provisioned.volume is None and provisioned.subject == provisioned.claim
    assert provisioned.claim is not None and provisioned.claim.uid == "c-1"
    assert report.target_of(None).subject is None


def test_spec_from_status() -> None:
    spec = report.report_spec("n1", "h", report.target_of(PV), status(), None, NOW)
    assert spec["dirtyBytes"] == 10 and spec["journalEntries"] == 1
    assert spec["dirtySince"] == report.rfc3339(NOW - 12)
    assert spec["exportDelaySeconds"] == 60 and spec["conflictsSinceLastReport"] == 0
    assert spec["volume"] == {"namespace": "ns", "name": "data"}
    # A second later the age is a second more: the same dirtySince, so no change to send.
    again = report.report_spec("n1", "h", report.target_of(PV),
                               status(oldest_dirty_seconds=13.2, conflicts=5), spec, NOW + 1)
    assert again["dirtySince"] == spec["dirtySince"]
    assert again["conflictsSinceLastReport"] == 2
    assert not report.changed(spec, {**spec, "reportTime": "x", "conflictsSinceLastReport": 4})
    assert report.changed(spec, again)


def test_a_dead_engine_keeps_the_last_known_counts() -> None:
    spec = report.report_spec("n1", "h", report.Target(), status(), None, NOW)
    dead = report.report_spec("n1", "h", report.Target(), None, spec, NOW + 5)
    assert dead["engineAlive"] is False and dead["dirtyBytes"] == 10


def test_no_credential_reaches_a_report_or_an_event() -> None:
    register_secret("AKIASECRETVALUE123")
    spec = report.report_spec("n1", "h", report.Target(), status(
        last_export_error="403 for key AKIASECRETVALUE123", last_export_error_time=NOW), None, NOW)
    assert "AKIASECRETVALUE123" not in str(spec) and "***" in spec["lastExportError"]
    message = report.export_error_message("n1", "x" * 5000 + "AKIASECRETVALUE123")
    assert len(message) <= report.MAX_MESSAGE and "AKIASECRET" not in message


def test_conflict_event_names_the_path_and_lost_and_found() -> None:
    target = report.target_of(PV)
    assert target.subject is not None
    message = report.conflict_message("n1", {"path": "d/a.txt",
                                             "lost_path": ".openfiles-lost+found-x/a.txt"})
    body = report.event_body(target.subject, "n1", "Conflict", message, True, NOW)
    assert body["involvedObject"]["kind"] == "OpenFilesVolume"
    assert body["involvedObject"]["uid"] == "u-1" and body["metadata"]["namespace"] == "ns"
    assert "'d/a.txt'" in body["message"] and ".openfiles-lost+found-x/a.txt" in body["message"]
    assert len(report.report_name("n" * 300, "h")) <= 253
