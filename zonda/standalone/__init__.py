"""The all-in-one server `zonda up` runs: DAG processor, scheduler with local workers, HTTP API."""
