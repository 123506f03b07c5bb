"""Artifacts: tasks' return values, serialized and stored (inline in the DB when small)."""
