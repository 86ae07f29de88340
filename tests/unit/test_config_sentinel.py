"""Redis through Sentinels: REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD (or
the config file's `redis` section), and one clear message per mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semantest.config import ConfigError, load_settings, masked

SENTINELS = {"REDIS_SENTINELS": "s1:26379, s2:26379,[fd00::3]:26380",
             "REDIS_SENTINEL_MASTER": "hub", "REDIS_PASSWORD": "data"}


def test_the_environment_names_sentinels_and_the_master() -> None:
    settings = load_settings(SENTINELS)
    assert settings.redis.sentinels == ["s1:26379", "s2:26379", "[fd00::3]:26380"]
    assert settings.redis.sentinel_master == "hub"
    assert settings.bus_url == "redis+sentinel://s1:26379,s2:26379,[fd00::3]:26380/hub"


def test_the_config_file_may_list_them_and_carry_the_sentinels_password(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"redis": {"sentinels": ["a:1", "b:2"], "sentinelMaster": "m/1",
                                          "sentinelPassword": "p@ss:w"}}))
    settings = load_settings({"CONFIG_FILE": str(path)})
    assert settings.bus_url == "redis+sentinel://:p%40ss%3Aw@a:1,b:2/m%2F1"
    shown = masked(settings)["redis"]
    assert "p@ss" not in json.dumps(shown) and shown["sentinels"] == ["a:1", "b:2"]


@pytest.mark.parametrize(("env", "message"), [
    ({"REDIS_SENTINELS": "s1:26379"}, "go together: set both or neither"),
    ({"REDIS_SENTINEL_MASTER": "hub"}, "go together: set both or neither"),
    ({**SENTINELS, "REDIS_SENTINELS": "s1"}, "redis.sentinels (from REDIS_SENTINELS): "
     "Value error, 's1' is not host:port"),
    ({**SENTINELS, "REDIS_SENTINELS": "s1:0"}, "'s1:0' is not host:port (port 1-65535)"),
    ({**SENTINELS, "REDIS_SENTINELS": "s1:70000"}, "'s1:70000' is not host:port"),
    ({**SENTINELS, "REDIS_SENTINELS": "s 1:5"}, "'s 1:5' is not host:port"),
    ({**SENTINELS, "REDIS_URL": "redis://r:6379"}, "set either url (REDIS_URL) or sentinels"),
])
def test_mistakes_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match="config key redis") as caught:
        load_settings(env)
    assert message in str(caught.value)


def test_a_file_list_of_non_strings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"redis": {"sentinels": [26379], "sentinelMaster": "m"}}))
    with pytest.raises(ConfigError, match="26379 is not host:port"):
        load_settings({"CONFIG_FILE": str(path)})
