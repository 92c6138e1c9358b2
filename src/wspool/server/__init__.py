"""The server node: a member of the WebSocket Server Farm (``wspool server``)."""
