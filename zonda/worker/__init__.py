"""The worker side: the protocol between scheduler and task code, and the runner that executes a task."""
