"""Pure logic of a server node: rate limits and the drain schedule. No I/O here; ``server/``
does the I/O around it."""
