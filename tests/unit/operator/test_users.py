"""Login users from the Secret that spec.auth.usersSecret names (semantest_operator/users.py)."""

from __future__ import annotations

import base64
import json

import pytest

from semantest_operator import users

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def data(**entries: str) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in entries.items()}


def test_a_printed_hash_or_an_object_makes_a_user() -> None:
    parsed = users.parse(data(bob=json.dumps({"passwordHash": HASH, "tenant": "acme",
                                              "scopes": ["admin"]}), alice=HASH + "\n"))
    assert parsed == (
        {"username": "alice", "passwordHash": HASH},
        {"username": "bob", "passwordHash": HASH, "tenant": "acme", "scopes": ["admin"]},
    )


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({}, "it has no entries"),
        ({"carol": "hunter2"}, "key carol: not an argon2id hash"),
        ({"carol": json.dumps({"passwordHash": "plain"})}, "passwordHash is not an argon2id"),
        ({"carol": json.dumps({"passwordHash": HASH, "role": "x"})}, "unknown field role"),
        ({"carol": json.dumps({"passwordHash": HASH, "scopes": ["root"]})}, "scopes must be"),
        ({"carol": json.dumps({"passwordHash": HASH, "tenant": ""})}, "tenant must be"),
    ],
)
def test_a_bad_entry_is_named(entries: dict[str, str], message: str) -> None:
    with pytest.raises(users.InvalidUsers, match=message):
        users.parse(data(**entries))


def test_a_value_that_is_not_text_is_named() -> None:
    with pytest.raises(users.InvalidUsers, match="key dave: the value is not UTF-8 text"):
        users.parse({"dave": base64.b64encode(b"\xff\xfe").decode()})
