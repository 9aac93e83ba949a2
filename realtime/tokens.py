"""Access-token strings: how they look, how their secret is stored and compared.

A token reads ``rt_<prefix>_<secret>``. The prefix (8 hex digits) is stored
in clear and indexed, so a CONNECT finds the one candidate row with one query;
the secret (32 random bytes, URL-safe base64) is stored only as its SHA-256.

Why SHA-256 and not a password hasher: PBKDF2 or Argon2 slow down guessing
of *low-entropy* secrets chosen by people. These secrets are 256 random bits,
which no amount of guessing reaches, fast hash or slow; a slow hash would only
put ~100 ms of CPU on every CONNECT. (GitHub and PyPI store API tokens the
same way.) The comparison is constant-time so that response timing says
nothing about how much of a guessed hash matched.

The recognisable ``rt_`` start also lets the token authenticator tell its
tokens from anything else an application puts in ``auth.token``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

SCHEME = "rt"
PREFIX_BYTES = 4
SECRET_BYTES = 32
_SHAPE = re.compile(rf"^{SCHEME}_([0-9a-f]{{{PREFIX_BYTES * 2}}})_([A-Za-z0-9_-]{{20,100}})$")


def generate() -> tuple[str, str, str]:
    """A new token: (the full token to show once, its prefix, the hash to store)."""
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{SCHEME}_{prefix}_{secret}", prefix, hash_secret(secret)


def is_ours(raw: object) -> bool:
    """True for strings that claim to be realtime tokens (they start with ``rt_``)."""
    return isinstance(raw, str) and raw.startswith(f"{SCHEME}_")


def split(raw: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed token; None when it is malformed."""
    match = _SHAPE.match(raw)
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
