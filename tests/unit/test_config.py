"""Configuration: environment > config file > defaults, and one clear message per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semantest.config import ConfigError, load_settings, masked


def write(tmp_path: Path, config: object) -> dict[str, str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return {"CONFIG_FILE": str(path)}


def test_defaults_match_the_seed() -> None:
    settings = load_settings({})
    assert settings.server.port == 3000 and settings.server.host == "0.0.0.0"
    assert settings.auth.enabled is True
    assert settings.auth.api_keys.header == "X-API-Key"
    assert settings.websocket.ping_interval == 25000
    assert settings.websocket.ping_timeout == 60000
    assert settings.websocket.max_payload == 1048576
    assert settings.commands.timeout == 30000
    assert settings.server.max_connections == 1000
    assert settings.bus_url == "memory://"


def test_the_seeds_config_file_is_accepted(tmp_path: Path) -> None:
    seed = {
        "server": {"port": 3000, "host": "0.0.0.0", "cors": {"origin": "*", "credentials": True}},
        "auth": {"enabled": True, "jwt": {"secret": "your-secret-key", "expiresIn": "24h"},
                 "apiKeys": {"enabled": True, "keys": ["key1", "key2"]}},
        "redis": {"url": "redis://localhost:6379", "keyPrefix": "semantest:"},
        "websocket": {"pingInterval": 25000, "pingTimeout": 60000, "maxPayload": 1048576},
        "rateLimiting": {"enabled": True, "windowMs": 60000, "maxRequests": 100,
                         "message": "Too many requests"},
        "cors": {"origin": ["https://app.semantest.com"], "credentials": True,
                 "methods": ["GET", "POST"], "allowedHeaders": ["Authorization", "X-API-Key"]},
        "scaling": {"adapter": "redis", "redis": {"url": "redis://localhost:6379",
                                                  "key": "semantest-io"}},
    }
    settings = load_settings(write(tmp_path, seed))
    assert settings.auth.jwt.expires_in_seconds == 86400
    assert [k.get_secret_value() for k in settings.auth.api_keys.keys] == ["key1", "key2"]
    assert settings.bus_url == "redis://localhost:6379"
    assert settings.effective_cors is not None
    assert settings.effective_cors.origin == ["https://app.semantest.com"]
    assert settings.rate_limiting.max_requests == 100


def test_environment_beats_file_beats_defaults(tmp_path: Path) -> None:
    env = write(tmp_path, {"server": {"port": 4000, "host": "127.0.0.1"},
                           "logging": {"level": "error"}})
    env.update({"PORT": "5000", "AUTH_ENABLED": "false", "JWT_SECRET": "s" * 32,
                "API_KEY_HEADER": "X-Token", "REDIS_URL": "redis://r:6379/1",
                "REDIS_PASSWORD": "pw", "LOG_FORMAT": "json", "MAX_CONNECTIONS": "7",
                "MESSAGE_TIMEOUT": "1234", "HEARTBEAT_INTERVAL": "5000"})
    settings = load_settings(env)
    assert settings.server.port == 5000
    assert settings.server.host == "127.0.0.1"  # from the file
    assert settings.logging.level == "error" and settings.logging.format == "json"
    assert settings.auth.enabled is False
    assert settings.auth.api_keys.header == "X-Token"
    assert settings.bus_url == "redis://r:6379/1"
    assert settings.server.max_connections == 7
    assert settings.commands.timeout == 1234
    assert settings.websocket.ping_interval == 5000


def test_debug_variable_names_debug_namespaces() -> None:
    settings = load_settings({"DEBUG": "semantest:*"}).logging
    assert settings.debug == "semantest:*" and settings.level == "info"  # per namespace


def test_config_json_in_the_working_directory_is_read(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"server": {"port": 4321}}))
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).server.port == 4321


@pytest.mark.parametrize(
    ("env", "config", "message"),
    [
        ({"PORT": "abc"}, None, "config key server.port (from PORT)"),
        ({}, {"server": {"prot": 1}}, "config key server.prot"),
        ({}, {"auth": {"jwt": {"expiresIn": "soon"}}}, "config key auth.jwt.expiresIn"),
        ({"REDIS_URL": "http://x"}, None, "config key redis.url (from REDIS_URL)"),
        ({"LOG_FORMAT": "xml"}, None, "config key logging.format (from LOG_FORMAT)"),
        ({}, {"auth": {"users": [{"username": "u", "passwordHash": "plain"}]}},
         "config key auth.users.0.passwordHash"),
        ({}, {"websocket": {"maxPayload": "big"}}, "config key websocket.maxPayload"),
        ({}, [1, 2], "must hold a JSON object"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, env: dict[str, str], config: object,
                                  message: str) -> None:
    if config is not None:
        env = {**env, **write(tmp_path, config)}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert message in str(caught.value)


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONFIG_FILE"):
        load_settings({"CONFIG_FILE": str(tmp_path / "missing.json")})
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings({"CONFIG_FILE": str(tmp_path / "bad.json")})


def test_masked_config_hides_every_secret() -> None:
    settings = load_settings({"JWT_SECRET": "top-secret-value", "REDIS_PASSWORD": "pw-value",
                              "ADMIN_API_KEY": "admin-key-value"})
    text = json.dumps(masked(settings))
    for secret in ("top-secret-value", "pw-value", "admin-key-value"):
        assert secret not in text
    assert masked(settings)["auth"]["jwt"]["secret"] == "**********"
