"""Password hashing with argon2id (argon2-cffi); verification runs off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Checked when a username is unknown, so a miss costs as much time as a wrong password.
_DECOY = _hasher.hash("semantest-decoy-password")


def hash_password(password: str) -> str:
    """An argon2id PHC string, the form `auth.users[].passwordHash` expects."""
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    loop = asyncio.get_running_loop()
    if password_hash is None:
        await loop.run_in_executor(None, _verify, _DECOY, password)
        return False
    return await loop.run_in_executor(None, _verify, password_hash, password)
