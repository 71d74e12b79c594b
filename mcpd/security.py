"""Passwords (argon2id) and secret values encrypted at rest (Fernet)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# Verifying against this keeps the time of "no such user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("mcpd-dummy-password")

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists (pass None for no user)."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class SecretBox:
    """Encrypts secret data (a dict of strings) for storage."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, key: str | None, key_file: Path) -> SecretBox:
        """The configured key, or a key file created on first use (mode 0600)."""
        if key:
            try:
                return cls(key.encode())
            except ValueError as exc:
                raise ValueError(
                    "MCPD_SECRETS_KEY is not a valid key: generate one with "
                    "`python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`"
                ) from exc
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        return cls(key_file.read_bytes().strip())

    def seal(self, data: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(data, sort_keys=True).encode()).decode()

    def open(self, ciphertext: str) -> dict[str, str]:
        try:
            value = json.loads(self._fernet.decrypt(ciphertext.encode()))
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured key") from exc
        assert isinstance(value, dict)
        return {str(k): str(v) for k, v in value.items()}
