"""engine/openfiles_engine/fuse."""
