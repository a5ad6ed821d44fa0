"""Follow FactPulse asynchronous tasks from a Django project."""

__version__ = "0.1.0"
