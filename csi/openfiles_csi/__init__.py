"""openfiles_csi: the CSI identity, controller and node services, and the mounter."""

__version__ = "0.1.0"
