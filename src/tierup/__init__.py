"""tierup: a GraphQL backend for e-commerce member programs."""

__version__ = "0.1.0"
