"""chaostoolkit-toxiproxy's actions and probes work against the fault proxy."""

from __future__ import annotations

import pytest
import requests
from chaostoxi.proxy import actions as proxy_actions
from chaostoxi.proxy import probes
from chaostoxi.toxic import actions as toxic_actions
from proxyfixtures import EchoServer, connect, recv_exactly


def test_chaostoolkit_actions(api_url: str, echo: EchoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("chaos_PORT", "")  # the extension exports <name>_PORT; undone after the test
    host, port = api_url.removeprefix("http://").split(":")
    for config in ({"toxiproxy_url": api_url}, {"toxiproxy_host": host, "toxiproxy_port": int(port)}):
        cfg: dict = dict(config)
        assert proxy_actions.create_proxy("chaos", "127.0.0.1", echo.port, listen_host="127.0.0.1",
                                          configuration=cfg)
        listen_port = int(cfg["chaos_PORT"])
        assert probes.proxy_exist("chaos", configuration=cfg)
        assert not probes.proxy_exist("other", configuration=cfg)
        assert probes.get_proxy_attribute("chaos", "upstream", configuration=cfg) == echo.addr

        assert toxic_actions.create_latency_toxic("chaos", "lat", 10, jitter=2, configuration=cfg)
        assert toxic_actions.create_bandwith_degradation_toxic("chaos", "bw", 1000, configuration=cfg)
        assert toxic_actions.create_slow_connection_close_toxic("chaos", "sc", 5, configuration=cfg)
        assert toxic_actions.create_slicer_toxic("chaos", "sl", 100, 10, 5, configuration=cfg)
        assert toxic_actions.create_limiter_toxic("chaos", "lim", 10_000, configuration=cfg)
        assert toxic_actions.create_toxic("chaos", "np", "noop", stream="upstream", toxicity=0.5,
                                          configuration=cfg)
        names = [t["name"] for t in probes.get_proxy_attribute("chaos", "toxics", configuration=cfg)]
        assert names == ["np", "lat", "bw", "sc", "sl", "lim"]
        s = connect(f"127.0.0.1:{listen_port}")
        s.sendall(b"through six toxics")
        assert recv_exactly(s, 18) == b"through six toxics"
        s.close()
        assert toxic_actions.create_timeout_toxic("chaos", "to", 100, configuration=cfg)
        assert toxic_actions.delete_toxic("chaos", "to", configuration=cfg)
        assert not toxic_actions.delete_toxic("chaos", "to", configuration=cfg)

        assert proxy_actions.disable_proxy("chaos", configuration=cfg)
        assert probes.get_proxy_attribute("chaos", "enabled", configuration=cfg) is False
        assert proxy_actions.enable_proxy("chaos", configuration=cfg)
        assert int(cfg["chaos_PORT"]) == listen_port  # re-enabled on the same port
        assert proxy_actions.modify_proxy("chaos", upstream_address=f"127.0.0.1:{echo.port}", configuration=cfg)
        assert proxy_actions.reset(configuration=cfg)
        assert probes.get_proxy_attribute("chaos", "toxics", configuration=cfg) == []
        proxy_actions.delete_proxy("chaos", configuration=cfg)
        assert not probes.proxy_exist("chaos", configuration=cfg)
    assert requests.get(api_url + "/proxies", timeout=5).json() == {}
