"""Servers users would otherwise pick, run by ``wspool bench --peer`` for a side by side."""
