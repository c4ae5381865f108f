"""The README's volume section is a copy of docs/OPERATOR.md's, whose YAML the operator
tests apply to a real API server; this keeps the copy from drifting."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
END = "<!-- README section ends here. -->"


def test_readme_volume_section_matches_operator_doc() -> None:
    operator_doc = (ROOT / "docs" / "OPERATOR.md").read_text()
    start = operator_doc.index("### Declaring a volume")
    section = operator_doc[start:operator_doc.index(END)].strip()
    assert section in (ROOT / "README.md").read_text()


def test_main_job_command_sets_up_no_test_tool() -> None:
    """README's first command stays about a minute: its bootstrap builds nothing with Go."""
    readme = (ROOT / "README.md").read_text()
    assert "    scripts/bootstrap.sh && .venv/bin/openfiles demo\n" in readme
    script = (ROOT / "scripts" / "bootstrap.sh").read_text().splitlines()
    main_job = "\n".join(line for line in script if not line.lstrip().startswith("#"))
    for word in ("go build", "go install", "bootstrap-tests", "KUBERNETES", "minio"):
        assert word not in main_job, f"scripts/bootstrap.sh mentions {word!r}"


def test_test_command_sets_up_every_tool() -> None:
    test_command = (ROOT / "scripts" / "test.sh").read_text()
    assert "\nscripts/bootstrap-tests.sh\n" in test_command
    tests_bootstrap = (ROOT / "scripts" / "bootstrap-tests.sh").read_text()
    assert '"$ROOT/scripts/bootstrap.sh"' in tests_bootstrap
