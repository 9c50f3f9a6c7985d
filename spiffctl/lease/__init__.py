"""The Background lease: exactly one Background across every replica (see docs/lease.md)."""
