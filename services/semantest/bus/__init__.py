"""The bus between services, chosen by URL: `memory://` in process, `redis://` over streams."""

from semantest.bus.base import Bus, Delivery, Message, Store
from semantest.bus.ledger import Ledger, Policy


def open_bus(url: str, password: str | None = None, prefix: str = "semantest:") -> Bus:
    """`memory://` → the in-process bus; `redis://`, `rediss://` or `redis+sentinel://` (the
    primary found through Sentinels, `config.Redis.sentinel_url`) → Redis streams."""
    if url.startswith("memory://"):
        from semantest.bus.memory import InProcessBus

        return InProcessBus(codec="codec=1" in url)
    if url.startswith(("redis://", "rediss://", "redis+sentinel://")):
        from semantest.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(url, password=password, prefix=prefix)
    raise ValueError(f"redis.url {url!r}: expected memory://, redis:// or rediss://")


__all__ = ["Bus", "Delivery", "Ledger", "Message", "Policy", "Store", "open_bus"]
