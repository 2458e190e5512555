"""Secrets at rest: scrypt derives a key from the password, AES-256-GCM seals each value.

A stage keeps one salt (and a sealed check value, to tell a wrong password from damage)
in its metadata, so one key derivation serves a whole run. Each value gets a fresh
96-bit nonce. A second key from the same derivation makes HMACs of secret values, which
go into digests so a changed secret is noticed without its plaintext ever being stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

from ..errors import SecretError

__all__ = ["SecretBox"]

_CHECK = b"alchemy-nb secret check"
_AAD = b"alchemy-nb/secret@1"
_N, _R, _P = 2**15, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


class SecretBox:
    """Seals and opens secret values for one stage."""

    def __init__(self, password: str, params: dict[str, Any]) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        self.params = params
        key = Scrypt(
            salt=_unb64(params["salt"]), length=64, n=params["n"], r=params["r"], p=params["p"]
        ).derive(password.encode())
        self._aead = AESGCM(key[:32])
        self._mac_key = key[32:]

    @classmethod
    def create(cls, password: str) -> SecretBox:
        """A box with a fresh salt; its ``params`` go into the stage metadata."""
        params: dict[str, Any] = {
            "kdf": "scrypt",
            "n": _N,
            "r": _R,
            "p": _P,
            "salt": _b64(os.urandom(16)),
            "cipher": "aes-256-gcm",
        }
        box = cls(password, params)
        params["check"] = box.seal_bytes(_CHECK)
        return box

    @classmethod
    def for_plans(cls, password: str, scope: str) -> SecretBox:
        """A box whose macs depend only on the password and ``scope`` (app/stage), not on
        state: plans made before and after a stage's first secret agree, so a gate's plan
        digest holds. Used for macs only, never to seal."""
        salt = hashlib.sha256(f"alchemy-nb plan macs\0{scope}".encode()).digest()[:16]
        return cls(password, {"kdf": "scrypt", "n": _N, "r": _R, "p": _P, "salt": _b64(salt)})

    @classmethod
    def open(cls, password: str, params: dict[str, Any], *, where: str) -> SecretBox:
        """The box for stored ``params``; a wrong password is a clear SecretError."""
        box = cls(password, params)
        try:
            ok = box.open_bytes(params["check"]) == _CHECK
        except SecretError:
            ok = False
        if not ok:
            raise SecretError(
                "the password does not open the secrets in this stage's state",
                where=where,
                fix="set ALCHEMY_PASSWORD to the password the stage was deployed with",
            )
        return box

    def seal_bytes(self, data: bytes) -> dict[str, str]:
        nonce = os.urandom(12)
        return {"nonce": _b64(nonce), "ct": _b64(self._aead.encrypt(nonce, data, _AAD))}

    def open_bytes(self, blob: dict[str, str]) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(_unb64(blob["nonce"]), _unb64(blob["ct"]), _AAD)
        except (InvalidTag, KeyError, TypeError, ValueError) as exc:
            raise SecretError(
                "a stored secret cannot be decrypted (damaged or wrong key)",
                fix="check ALCHEMY_PASSWORD",
            ) from exc

    def seal(self, value: str) -> dict[str, str]:
        return self.seal_bytes(value.encode())

    def open_value(self, blob: dict[str, str]) -> str:
        return self.open_bytes(blob).decode()

    def mac(self, value: str) -> str:
        """A keyed digest of a secret value: equal values, equal macs; reveals nothing."""
        return "hmac-sha256:" + hmac.new(self._mac_key, value.encode(), hashlib.sha256).hexdigest()
