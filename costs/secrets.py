"""Webhook signing secrets: they must be read back to sign, so they are encrypted (Fernet)
with a key derived from SECRET_KEY, not hashed. Rotating SECRET_KEY makes them unreadable:
rotate each budget's webhook secret after rotating SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet
from django.conf import settings


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"costs.webhook-secret:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def webhook_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def signature(secret: str, body: bytes) -> str:
    """The value of the X-Controlplane-Signature-256 header: HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
