"""API key secrets: generation, parsing and hashing.

A secret looks like `cp_<prefix>_<secret>`. The prefix (12 hex characters) is stored in
clear and indexed so that authentication is one unique-index lookup; the whole secret
is stored only as its SHA-256. Secrets carry 256 random bits, so a fast hash is enough
(a slow password hash would only add latency to every request).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_SCHEME = "cp"


@dataclass(frozen=True)
class GeneratedSecret:
    prefix: str
    secret: str
    secret_hash: str


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_secret() -> GeneratedSecret:
    prefix = secrets.token_hex(6)
    secret = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return GeneratedSecret(prefix=prefix, secret=secret, secret_hash=secret_hash(secret))


def parse_prefix(secret: str) -> str | None:
    """The prefix of a well-formed secret, or None."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 12 or len(parts[2]) < 20:
        return None
    return parts[1]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)
