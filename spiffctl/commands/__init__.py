"""One module per CLI command; :mod:`spiffctl.cli` only wires them."""
