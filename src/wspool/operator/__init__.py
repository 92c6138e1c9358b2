"""The Kopf operator that reconciles WebSocketPool resources (`wspool operator`)."""
