"""Reading the projected policy ConfigMap directory."""

from __future__ import annotations

import json
import os

from openfiles_csi.plugin.policy import read_policies


def test_read_policies(tmp_path: str) -> None:
    d = str(tmp_path)
    # The layout kubelet makes for a ConfigMap volume: keys are symlinks into ..data.
    os.makedirs(os.path.join(d, "..2026_01_01"))
    os.symlink("..2026_01_01", os.path.join(d, "..data"))
    with open(os.path.join(d, "..2026_01_01", "ofv-ns-a-12345678"), "w") as f:
        json.dump(
            {
                "cacheTTL": 60,
                "cacheSize": 1024,
                "metadataTTL": 5,
                "exportDelay": 2,
                "policy": "fast",
            },
            f,
        )
    os.symlink("..data/ofv-ns-a-12345678", os.path.join(d, "ofv-ns-a-12345678"))
    with open(os.path.join(d, "ofv-bad"), "w") as f:
        json.dump({"cacheTTL": "soon"}, f)
    with open(os.path.join(d, "ofv-garbage"), "w") as f:
        f.write("{not json")
    assert read_policies(d) == {
        "ofv-ns-a-12345678": {
            "cache_ttl": 60,
            "cache_size": 1024,
            "metadata_ttl": 5,
            "export_delay": 2,
        },
    }


def test_missing_dir_is_empty(tmp_path: str) -> None:
    assert read_policies(os.path.join(str(tmp_path), "absent")) == {}
