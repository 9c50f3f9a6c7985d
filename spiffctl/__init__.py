"""spiffctl: one entrypoint for every role of spiffworkflow-backend."""

__version__ = "0.1.0"
