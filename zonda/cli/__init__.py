"""The `zonda` command line: parsing and presentation only; remote commands go through the HTTP API."""
