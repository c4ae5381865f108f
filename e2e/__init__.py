"""The cluster end-to-end scenarios (test layer 6); see e2e/README.md."""
