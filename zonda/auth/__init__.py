"""Credentials: password hashes (argon2) and API tokens (random secrets stored as SHA-256 hashes)."""
