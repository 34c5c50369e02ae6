"""Encryption at rest for secrets that must be read back (provider API keys, webhook
signing secrets). Fernet (AES-128-CBC + HMAC-SHA256) with a key from FIELD_ENCRYPTION_KEY,
or derived from SECRET_KEY when that is not set."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from core.errors import ApplicationError


class DecryptionFailed(ApplicationError):
    status_code = 500
    error_type = "api_error"
    default_code = "secret_unreadable"


@lru_cache(maxsize=4)
def _fernet(key_material: str) -> Fernet:
    digest = hashlib.sha256(f"controlplane-field-encryption:{key_material}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _current() -> Fernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY (or SECRET_KEY) changed since it was saved; "
            "enter the secret again."
        ) from None
