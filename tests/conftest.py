"""Shared pytest fixtures (kept small: each room keeps its own fixtures in its test module)."""
