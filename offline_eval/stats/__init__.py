"""Pure statistics on small aggregates (numpy/scipy only)."""
