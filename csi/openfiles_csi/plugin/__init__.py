"""csi/openfiles_csi/plugin."""
