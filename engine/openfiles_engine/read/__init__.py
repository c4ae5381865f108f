"""engine/openfiles_engine/read."""
