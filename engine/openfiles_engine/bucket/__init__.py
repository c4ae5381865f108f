"""engine/openfiles_engine/bucket."""
