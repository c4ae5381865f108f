"""openfiles_engine."""
