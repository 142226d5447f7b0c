"""Pure rules over plain dataclasses. No I/O, no SQLAlchemy, no Strawberry."""
