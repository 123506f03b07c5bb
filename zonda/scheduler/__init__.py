"""The scheduler: applies core decisions to the runs it owns, in batched transactions, and dispatches."""
