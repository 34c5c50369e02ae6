"""Webhook signing secrets: they must be read back to sign, so they are encrypted (Fernet)
with a key derived from SECRET_KEY, not hashed. Rotating SECRET_KEY makes them unreadable:
rotate each budget's webhook secret after rotating SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

from cryptography.fernet import Fernet
from django.conf import settings


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"costs.webhook-secret:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def webhook_secret_new() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes (the HMAC key)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def signature_headers(secret: str, *, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers (https://www.standardwebhooks.com): webhook-id,
    webhook-timestamp (Unix seconds) and webhook-signature `v1,<base64 HMAC-SHA256 of
    "id.timestamp.body">`, keyed with the secret's base64-decoded bytes. A receiver refuses a
    timestamp more than five minutes away from its clock, and remembers ids it has seen, so a
    captured request cannot be replayed. Secrets issued before this scheme (URL-safe
    characters) are decoded exactly as the `standardwebhooks` library decodes them."""
    timestamp = int(at.timestamp())
    key = base64.b64decode(secret.removeprefix("whsec_") + "==")
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,{digest}"}
