"""Generated CSI v1 stubs. Do not edit: run scripts/gen_protos.py."""
