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


MARKER = {"volume_id": "h", "source": "s3://b/p", "cache_dir": "/c", "dirty_files": 2,
          "dirty_bytes": 45, "pending_exports": 2, "lostfound_files": 0, "lostfound_bytes": 0,
          "error": "connection refused", "since": NOW - 30}


def test_a_kept_cache_with_dirty_data_is_stranded_and_announced_once() -> None:
    live = report.report_spec("n1", "h", report.target_of(PV), status(lostfound_files=1,
                              lostfound_bytes=7), None, NOW)
    assert (live["lostFoundFiles"], live["lostFoundBytes"]) == (1, 7)
    kept = report.kept_spec("n1", "h", report.target_of(PV), MARKER, live)
    assert kept["cacheKept"] and kept["stranded"] and not kept["engineAlive"]
    assert (kept["dirtyFiles"], kept["dirtyBytes"], kept["conflicts"]) == (2, 45, 3)
    assert kept["strandedSince"] == report.rfc3339(NOW - 30)
    assert kept["strandedError"] == "connection refused" and "dirtySince" not in kept
    reason, message = report.kept_event(live, kept, "n1") or ("", "")
    assert reason == "DataStranded" and "node n1 holds 45 dirty bytes in 2 files" in message
    assert report.kept_event(kept, kept, "n1") is None  # once per strandedSince
    # Unknown counts (the flush-only engine did not answer) keep the last known ones.
    unknown = {**MARKER, "dirty_files": None, "dirty_bytes": None, "pending_exports": None}
    assert report.kept_spec("n1", "h", report.Target(), unknown, live)["dirtyBytes"] == 10
    # Staged again: the live engine's report has none of it.
    again = report.report_spec("n1", "h", report.Target(), None, kept, NOW + 60)
    assert not {"cacheKept", "stranded", "strandedSince", "strandedError"} & set(again)


def test_a_cache_kept_for_lost_and_found_only() -> None:
    marker = {**MARKER, "dirty_files": 0, "dirty_bytes": 0, "pending_exports": 0,
              "lostfound_files": 1, "lostfound_bytes": 44, "error": None}
    kept = report.kept_spec("n1", "h", report.Target(), marker, None)
    assert kept["cacheKept"] and not kept["stranded"] and "strandedSince" not in kept
    assert (kept["dirtyBytes"], kept["lostFoundFiles"], kept["lostFoundBytes"]) == (0, 1, 44)
    reason, message = report.kept_event(None, kept, "n1") or ("", "")
    assert reason == "LostFoundKept" and "1 files (44 bytes)" in message
    assert report.kept_event(kept, kept, "n1") is None


def test_events_state_reaches_the_report_without_credentials() -> None:
    register_secret("nats-secret-pw")
    assert "eventsConnected" not in report.report_spec("n1", "h", report.Target(), status(),
                                                       None, NOW)
    up = report.report_spec("n1", "h", report.Target(), status(
        events={"connected": True, "error": None}), None, NOW)
    assert up["eventsConnected"] is True and "eventsError" not in up
    down = report.report_spec("n1", "h", report.Target(), status(
        events={"connected": False, "error": "auth nats-secret-pw refused"}), None, NOW)
    assert down["eventsConnected"] is False
    assert down["eventsError"] == "auth *** refused"
