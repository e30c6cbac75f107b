"""soul.yaml: defaults, and errors that name their line."""

from __future__ import annotations


import pytest

from soulctl.errors import ConfigError
from soulctl.home.config import DEFAULT_SOUL_YAML, parse_config

def test_default_soul_yaml_validates():
    cfg = parse_config(DEFAULT_SOUL_YAML)
    assert cfg.roles["soul"].model == "generations/current"
    assert cfg.memory.pressure == 0.95
    assert cfg.store == "duckdb:data/soul.duckdb"


def test_unknown_key_names_its_line():
    text = DEFAULT_SOUL_YAML.replace("  reply_tokens: 512\n", "  reply_tokens: 512\n  windw_tokens: 9\n")
    line = text.splitlines().index("  windw_tokens: 9") + 1
    with pytest.raises(ConfigError, match=rf"soul.yaml:{line}: memory.windw_tokens: unknown key"):
        parse_config(text)


def test_bad_value_names_its_line():
    text = DEFAULT_SOUL_YAML.replace("kv: f16 ", "kv: f13 ")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "kv: f13" in l)
    with pytest.raises(ConfigError, match=rf"soul.yaml:{line}: roles.soul.kv"):
        parse_config(text)


def test_invalid_yaml_is_a_config_error():
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_config("roles: [unclosed\n")


def test_soul_role_required():
    with pytest.raises(ConfigError, match="roles must define `soul`"):
        parse_config("roles:\n  majordomo: {backend: openai}\n")
