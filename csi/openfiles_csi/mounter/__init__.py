"""csi/openfiles_csi/mounter."""
