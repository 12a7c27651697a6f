"""kanri: run a whole web stack on one server from one file."""

__version__ = "0.1.0"
