"""The edges: the only code that knows table names, paths and URIs."""
