"""engine/openfiles_engine/state."""
