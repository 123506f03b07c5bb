"""Executors: backends that run task requests somewhere and report outcomes back."""
