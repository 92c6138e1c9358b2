"""The end-to-end tier: the product on a real cluster, driven as its users drive it."""
