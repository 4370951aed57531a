"""Passwords and secrets: argon2id hashes (argon2-cffi), generated passwords, SHA-256 of
high-entropy tokens (API keys and session ids are random, so a fast hash is enough for them;
passwords are chosen by people, so they get a slow, salted one)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) parameters
# Verified when the user does not exist, so that a wrong name costs as long as a wrong password.
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))
MIN_PASSWORD = 12


class WeakPassword(ValueError):
    pass


def generate_password() -> str:
    """A random password of 20 URL-safe characters (~120 bits)."""
    return secrets.token_urlsafe(15)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"passwords need at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (``None``: no such user, still pays the cost)."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two strings (CSRF tokens)."""
    return hmac.compare_digest(a.encode(), b.encode())
