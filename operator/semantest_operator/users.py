"""Login users from the Secret `spec.auth.usersSecret` names: its data, read as `auth.users`.

Each key of the Secret is a username, each value what `semantest-server hash-password` prints
(an argon2id PHC string), so

    kubectl create secret generic hub-users \\
        --from-literal=alice="$(semantest-server hash-password 's3cret')"

makes a user `alice` of tenant `default` with scope `client`. A value may instead be a JSON
object with `passwordHash` and, optionally, `tenant` and `scopes` (of client, extension, admin).
Pure functions, no I/O; a bad entry raises `InvalidUsers` naming the key and what is wrong, so
the cluster's Degraded condition can say it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

HASH_PREFIX = "$argon2id$"
SCOPES = ("client", "extension", "admin")
FIELDS = {"passwordHash", "tenant", "scopes"}


class InvalidUsers(ValueError):
    """An entry of the users Secret the hub would refuse."""


def _entry(username: str, text: str) -> dict[str, Any]:
    if text.startswith(HASH_PREFIX):
        return {"username": username, "passwordHash": text}
    try:
        entry = json.loads(text)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        raise InvalidUsers(f"key {username}: not an argon2id hash (`semantest-server "
                           "hash-password` prints one) nor a JSON object with passwordHash")
    unknown = sorted(set(entry) - FIELDS)
    if unknown:
        raise InvalidUsers(f"key {username}: unknown field {', '.join(unknown)} "
                           f"(allowed: {', '.join(sorted(FIELDS))})")
    if not str(entry.get("passwordHash", "")).startswith(HASH_PREFIX):
        raise InvalidUsers(f"key {username}: passwordHash is not an argon2id hash")
    tenant = entry.get("tenant", "default")
    if not isinstance(tenant, str) or not tenant:
        raise InvalidUsers(f"key {username}: tenant must be a non-empty string")
    scopes = entry.get("scopes", ["client"])
    if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
        raise InvalidUsers(f"key {username}: scopes must be a non-empty list of "
                           f"{', '.join(SCOPES)}")
    return {"username": username, "passwordHash": entry["passwordHash"], "tenant": tenant,
            "scopes": scopes}


def parse(data: Mapping[str, str]) -> tuple[dict[str, Any], ...]:
    """The `auth.users` entries of a Secret's `data` (base64 values), sorted by username."""
    if not data:
        raise InvalidUsers("it has no entries (one key per username)")
    users = []
    for username, encoded in sorted(data.items()):
        try:
            text = base64.b64decode(encoded, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidUsers(f"key {username}: the value is not UTF-8 text") from None
        users.append(_entry(username, text))
    return tuple(users)
