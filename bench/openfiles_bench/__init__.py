"""bench/openfiles_bench."""
