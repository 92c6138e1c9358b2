"""websocket-pool: WebSocket infrastructure with connection pooling, run on Kubernetes.

Layers (checked by import-linter): ``cli``/``dev`` → ``server | gateway | operator | bench``
→ ``client`` → ``state`` → ``core``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
