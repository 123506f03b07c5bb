"""The HTTP API: `create_app` composes it; routes stay thin over the service layer."""
