"""Use cases: one function each, owning its transaction, returning plain results."""
