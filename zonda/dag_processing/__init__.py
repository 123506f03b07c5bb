"""The DAG processor: imports DAG files in child processes and records their specs, versions and errors."""
