"""Pure logic of the gateway: strategies, circuit breakers, health verdicts, pool figures and
the URLs derived from a node's. No I/O here; ``gateway/`` does the I/O around it."""
