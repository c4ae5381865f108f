"""openfiles_operator."""
