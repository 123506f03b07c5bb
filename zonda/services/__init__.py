"""The one service layer: every read and write of the API, the web UI and the remote CLI goes through here.

Each function takes a `Services` context first. Scoping (the caller's tenant and permissions) will be
enforced in this layer, in one place, so routes and commands never touch `zonda.db` themselves.
"""
