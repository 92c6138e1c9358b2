"""The Python client SDK."""
