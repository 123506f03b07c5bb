"""Thin HTTP routes, one module per resource: parse the request, call a service, return a schema."""
