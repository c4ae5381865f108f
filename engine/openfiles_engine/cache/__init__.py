"""engine/openfiles_engine/cache."""
