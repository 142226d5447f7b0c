"""Codes people read aloud and type by hand: members' referral codes and coupons' codes."""

from __future__ import annotations

import secrets

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def random_code(length: int) -> str:
    """`length` characters of the alphabet, every code equally likely: one draw from the system's randomness
    for the whole code (a draw a character, each a call into the system, was a sixth of importing members)."""
    number = secrets.randbelow(len(ALPHABET) ** length)
    return "".join(ALPHABET[digit] for digit in digits(number, length))


def digits(number: int, length: int) -> list[int]:
    """`number` in the alphabet's base, `length` digits, the most significant first."""
    found = []
    for _ in range(length):
        number, digit = divmod(number, len(ALPHABET))
        found.append(digit)
    return found[::-1]
