"""Metadata DB: schema, engine, migrations and the data functions that read and write it."""
