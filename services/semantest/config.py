"""Typed settings: environment > config file (`CONFIG_FILE` or ./config.json) > defaults.

The file uses the seed's camelCase keys; each environment variable of the seed maps onto one key.
pydantic does all parsing and validation; a bad value raises `ConfigError` naming the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the config."""


class Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class Cors(Section):
    origin: str | list[str] = "*"
    credentials: bool = False
    methods: list[str] = ["GET", "POST", "DELETE", "OPTIONS"]
    allowed_headers: list[str] = ["Authorization", "Content-Type", "X-API-Key"]


class Tls(Section):
    enabled: bool = False
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None


class Server(Section):
    port: int = Field(3000, ge=0, le=65535)
    host: str = "0.0.0.0"
    cors: Cors | None = None
    tls: Tls = Tls()
    max_connections: int = Field(1000, ge=1)
    max_connections_per_principal: int | None = Field(
        None, ge=1, description="per credential on one gateway; none = only maxConnections")
    max_handshakes_per_ip: int = Field(
        100, ge=1, description="open connections per IP that have not authenticated yet")
    connect_timeout: int = Field(
        45000, ge=100, description="ms a connection has to complete the Socket.IO connect")
    drain_timeout: int = Field(
        20000, ge=0, description="ms a draining service waits for in-flight work on SIGTERM")


_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def duration_seconds(text: str | int) -> int:
    """`"24h"` → 86400, like the jsonwebtoken `expiresIn` the seed shows (a bare number = s)."""
    if isinstance(text, int):
        return text
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like '24h', '30m' or '3600'")
    return max(1, int(int(match.group(1)) * _UNIT_SECONDS[match.group(2)]))


class Jwt(Section):
    secret: SecretStr | None = None
    expires_in: str | int = "24h"

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, value: str | int) -> str | int:
        duration_seconds(value)
        return value

    @property
    def expires_in_seconds(self) -> int:
        return duration_seconds(self.expires_in)


class ApiKeys(Section):
    enabled: bool = True
    keys: list[SecretStr] = []
    header: str = "X-API-Key"


class User(Section):
    username: str = Field(min_length=1)
    password_hash: str = Field(pattern=r"^\$argon2id\$")
    tenant: str = "default"
    scopes: list[Literal["client", "extension", "admin"]] = ["client"]


class LoginAttempts(Section):
    """/auth/login attempts allowed per window, per username and per client IP."""

    window_ms: int = Field(900_000, ge=1)
    per_username: int = Field(10, ge=1)
    per_ip: int = Field(100, ge=1)


class Auth(Section):
    enabled: bool = True
    login_attempts: LoginAttempts = LoginAttempts()
    jwt: Jwt = Jwt()
    api_keys: ApiKeys = ApiKeys()
    users: list[User] = []
    admin_keys: list[SecretStr] = []


_SENTINEL = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


class Redis(Section):
    url: str | None = None
    password: SecretStr | None = None
    key_prefix: str = "semantest:"
    sentinels: list[str] = Field(
        [], description="Redis Sentinels as host:port; the primary is found through them")
    sentinel_master: str | None = Field(
        None, min_length=1, description="the name the Sentinels monitor the primary under")
    sentinel_password: SecretStr | None = Field(
        None, description="for Sentinels that require one (`requirepass` in sentinel.conf)")

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "memory://")):
            raise ValueError("must start with redis://, rediss:// or memory://")
        return value or None

    @field_validator("sentinels", mode="before")
    @classmethod
    def _sentinel_list(cls, value: object) -> object:
        """REDIS_SENTINELS is one comma-separated string; the file may give a list."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for item in value:
                match = _SENTINEL.match(item) if isinstance(item, str) else None
                if not match or not 0 < int(match.group(2)) <= 65535:
                    raise ValueError(f"{item!r} is not host:port (port 1-65535)")
        return value

    @model_validator(mode="after")
    def _one_way_to_redis(self) -> Redis:
        if bool(self.sentinels) != bool(self.sentinel_master):
            raise ValueError("sentinels and sentinelMaster (REDIS_SENTINELS, "
                             "REDIS_SENTINEL_MASTER) go together: set both or neither")
        if self.sentinels and self.url:
            raise ValueError("set either url (REDIS_URL) or sentinels (REDIS_SENTINELS), "
                             "not both")
        return self

    @property
    def sentinel_url(self) -> str | None:
        """The bus address with Sentinels: `redis+sentinel://[:password@]h:p,h:p/<master>`."""
        if not self.sentinels or not self.sentinel_master:
            return None
        auth = self.sentinel_password
        userinfo = f":{quote(auth.get_secret_value(), safe='')}@" if auth else ""
        return (f"redis+sentinel://{userinfo}{','.join(self.sentinels)}/"
                f"{quote(self.sentinel_master, safe='')}")


class Websocket(Section):
    ping_interval: int = Field(25000, ge=1000)
    ping_timeout: int = Field(60000, ge=1000)
    max_payload: int = Field(1_048_576, ge=1024)
    max_subscriptions: int = Field(1000, ge=1, description="channels per connection")
    max_sessions: int = Field(100, ge=1, description="sessions per connection")
    max_depth: int = Field(32, ge=1, le=200, description="nesting of any event payload")


class Channels(Section):
    history: int = Field(1000, ge=0, description="messages kept per channel for `since`")


class Commands(Section):
    timeout: int = Field(30000, ge=1, description="default command timeout, ms")
    max_timeout: int = Field(600_000, ge=1)
    extension_grace: int = Field(10000, ge=0, description="reconnect grace for extensions, ms")
    retention: int = Field(
        600_000, ge=1000, description="ms an ended command's result is kept for re-sends")
    max_result_bytes: int = Field(
        262_144, ge=1024, description="largest result kept whole for re-sends; a larger one "
        "is kept without its data (metadata.dataDropped)")
    max_queued_per_principal: int = Field(
        1000, ge=1, description="commands one principal may have waiting for an extension")


class Sessions(Section):
    max_per_principal: int = Field(100, ge=1, description="sessions one principal owns")
    max_per_tenant: int = Field(10000, ge=1, description="sessions one tenant holds")
    persistent_ttl: int = Field(
        604_800_000, ge=1000, description="ms a persistent session lives after its last use")


class RateLimiting(Section):
    enabled: bool = False
    window_ms: int = Field(60000, ge=1)
    max_requests: int = Field(100, ge=1)
    message: str = "Too many requests"
    trust_proxy: int = Field(0, ge=0, le=10, description="X-Forwarded-For hops to trust")


class ScalingRedis(Section):
    url: str | None = None
    key: str | None = None


class Scaling(Section):
    adapter: Literal["redis", "memory"] = "memory"
    redis: ScalingRedis = ScalingRedis()


class Logging(Section):
    level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    format: Literal["json", "pretty"] = "pretty"
    debug: str = Field(
        "", description="namespaces with debug output, as the Node `debug` package reads "
        "DEBUG: `semantest:gateway,semantest:router`, `semantest:*`, `-semantest:bus` to leave "
        "one out; names outside semantest are ignored")


class Settings(Section):
    server: Server = Server()
    auth: Auth = Auth()
    redis: Redis = Redis()
    websocket: Websocket = Websocket()
    commands: Commands = Commands()
    sessions: Sessions = Sessions()
    channels: Channels = Channels()
    rate_limiting: RateLimiting = RateLimiting()
    cors: Cors | None = None
    scaling: Scaling = Scaling()
    logging: Logging = Logging()

    @property
    def bus_url(self) -> str:
        """Where the bus lives: `redis.url`, else `redis.sentinels`, else the seed's
        `scaling.redis.url`, else memory."""
        return (self.redis.url or self.redis.sentinel_url or self.scaling.redis.url
                or "memory://")

    @property
    def effective_cors(self) -> Cors | None:
        return self.cors or self.server.cors


# Each variable of the seed (and a few of ours) and the config key it sets.
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "PORT": ("server", "port"),
    "HOST": ("server", "host"),
    "MAX_CONNECTIONS": ("server", "maxConnections"),
    "MAX_CONNECTIONS_PER_PRINCIPAL": ("server", "maxConnectionsPerPrincipal"),
    "AUTH_ENABLED": ("auth", "enabled"),
    "API_KEY_HEADER": ("auth", "apiKeys", "header"),
    "JWT_SECRET": ("auth", "jwt", "secret"),
    "JWT_EXPIRES_IN": ("auth", "jwt", "expiresIn"),
    "REDIS_URL": ("redis", "url"),
    "REDIS_PASSWORD": ("redis", "password"),
    "REDIS_KEY_PREFIX": ("redis", "keyPrefix"),
    "REDIS_SENTINELS": ("redis", "sentinels"),
    "REDIS_SENTINEL_MASTER": ("redis", "sentinelMaster"),
    "REDIS_SENTINEL_PASSWORD": ("redis", "sentinelPassword"),
    "LOG_LEVEL": ("logging", "level"),
    "LOG_FORMAT": ("logging", "format"),
    "DEBUG": ("logging", "debug"),
    "MESSAGE_TIMEOUT": ("commands", "timeout"),
    "HEARTBEAT_INTERVAL": ("websocket", "pingInterval"),
}
ADMIN_API_KEY_ENV = "ADMIN_API_KEY"


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    for part in path[:-1]:
        node = data.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {part!r} must be an object")
        data = node
    data[path[-1]] = value


def _read_file(env: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    name = env.get("CONFIG_FILE")
    path = Path(name) if name else Path("config.json")
    if not name and not path.exists():
        return {}, None
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"CONFIG_FILE {str(path)!r}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a JSON object")
    return data, str(path)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Merge defaults, the config file and the environment into validated settings."""
    env = dict(os.environ if env is None else env)
    data, source = _read_file(env)
    for variable, path in ENVIRONMENT.items():
        if env.get(variable, "") != "":
            _set_path(data, path, env[variable])
    if env.get(ADMIN_API_KEY_ENV):
        admin_keys = data.setdefault("auth", {}).setdefault("adminKeys", [])
        admin_keys.append(env[ADMIN_API_KEY_ENV])
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(root)"
        variable = next((v for v, p in ENVIRONMENT.items() if ".".join(p) == key), None)
        where = f" (from {variable})" if variable and env.get(variable) else ""
        origin = f" in {source}" if source and not where else ""
        raise ConfigError(f"config key {key}{where}{origin}: {first['msg']}") from None


def masked(settings: Settings) -> dict[str, Any]:
    """The merged settings as JSON-ready data, every secret replaced by `***`."""
    data = orjson.loads(settings.model_dump_json(by_alias=True))
    for section in (data["redis"], data["scaling"]["redis"]):  # redis://user:password@host
        if section.get("url"):
            section["url"] = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", section["url"])
    return data
