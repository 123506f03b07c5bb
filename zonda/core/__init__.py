"""Pure decisions: states, readiness, trigger rules, retries, schedules. No I/O; time is a parameter."""
