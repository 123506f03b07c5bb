"""Authoring SDK: what DAG files import. Independent of the server (no db/, api/, scheduler/ imports)."""
