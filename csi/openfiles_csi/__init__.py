"""openfiles_csi."""
