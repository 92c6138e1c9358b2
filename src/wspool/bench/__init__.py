"""The load generator (`wspool bench`)."""
