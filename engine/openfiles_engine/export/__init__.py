"""engine/openfiles_engine/export."""
