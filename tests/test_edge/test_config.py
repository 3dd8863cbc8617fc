"""The edge settings of both commands: documented defaults, environment, flags, bad values;
and the trusted-proxy rules on their own."""

from __future__ import annotations

import ipaddress

import pytest

from bff.config import BffConfig, config_from
from bff.errors import ConfigError as BffConfigError
from httpedge.forwarded import TrustedProxies, parse_networks
from server.__main__ import ConfigError, load_config

ENV = {"MSSQL_PASSWORD": "secret"}


def test_api_defaults_and_overrides() -> None:
    config = load_config([], ENV)
    assert (config.header_timeout_s, config.max_connections) == (15.0, 512)
    assert config.readiness_timeout_s == 2.0
    assert config.trusted_proxies == ()
    env = {
        **ENV,
        "API_HEADER_TIMEOUT": "3",
        "API_MAX_CONNECTIONS": "40",
        "API_READINESS_TIMEOUT": "0.5",
        "API_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/16,::1",
    }
    config = load_config(["--max-connections", "41"], env)
    assert (config.header_timeout_s, config.max_connections) == (3.0, 41)
    assert config.readiness_timeout_s == 0.5
    assert config.trusted_proxies == (
        ipaddress.ip_network("10.0.0.5/32"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("::1/128"),
    )


@pytest.mark.parametrize(
    ("argv", "env", "culprit"),
    [
        ([], {**ENV, "API_HEADER_TIMEOUT": "0"}, "API_HEADER_TIMEOUT"),
        (["--max-connections", "0"], ENV, "--max-connections"),
        ([], {**ENV, "API_READINESS_TIMEOUT": "soon"}, "API_READINESS_TIMEOUT"),
        ([], {**ENV, "API_TRUSTED_PROXIES": "10.0.0.1, the-bff"}, "the-bff"),
    ],
)
def test_api_bad_edge_values_name_their_source(
    argv: list[str], env: dict[str, str], culprit: str
) -> None:
    with pytest.raises(ConfigError, match=culprit):
        load_config(argv, env)


def test_bff_defaults_environment_and_flags() -> None:
    assert (BffConfig().header_timeout_s, BffConfig().max_connections) == (15.0, 512)
    env = {"BFF_HEADER_TIMEOUT": "2.5", "BFF_MAX_CONNECTIONS": "30"}
    config = config_from(env)
    assert (config.header_timeout_s, config.max_connections) == (2.5, 30)
    config = config_from(env, header_timeout_s="4", max_connections="31")  # flags win
    assert (config.header_timeout_s, config.max_connections) == (4.0, 31)


@pytest.mark.parametrize(
    ("env", "flags", "culprit"),
    [
        ({"BFF_HEADER_TIMEOUT": "-1"}, {}, "BFF_HEADER_TIMEOUT"),
        ({"BFF_MAX_CONNECTIONS": "0"}, {}, "BFF_MAX_CONNECTIONS"),
        ({}, {"max_connections": "many"}, "--max-connections"),
        ({}, {"header_timeout_s": "nan"}, "--header-timeout"),
    ],
)
def test_bff_bad_edge_values_name_their_source(
    env: dict[str, str], flags: dict[str, str], culprit: str
) -> None:
    with pytest.raises(BffConfigError, match=culprit):
        config_from(env, **flags)


def test_the_client_is_the_first_untrusted_address_from_the_right() -> None:
    proxies = TrustedProxies(parse_networks("127.0.0.1, 10.0.0.0/8"))
    assert proxies.client_of("192.0.2.1", ["203.0.113.9"]) is None  # peer not trusted
    assert proxies.client_of("127.0.0.1", []) is None  # nothing relayed
    assert proxies.client_of("127.0.0.1", ["203.0.113.9"]) == "203.0.113.9"
    # Several headers are one list; trusted hops are skipped, the rest is not believed.
    assert proxies.client_of("127.0.0.1", ["198.51.100.7, 203.0.113.9", "10.2.3.4"]) == (
        "203.0.113.9"
    )
    # Garbage stops the walk: the last address that parsed stands.
    assert proxies.client_of("127.0.0.1", ["203.0.113.9, <script>, 10.2.3.4"]) == "10.2.3.4"
    assert proxies.client_of("127.0.0.1", [" 2001:db8::1 "]) == "2001:db8::1"
