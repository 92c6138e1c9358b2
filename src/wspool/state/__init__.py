"""State and messaging: the Redis engine and the in-memory engine behind one interface."""
