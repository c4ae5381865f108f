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
