"""The fault proxy's HTTP API, driven by toxiproxy-python and by raw requests for exact answers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests
from proxyfixtures import EchoServer, connect
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from harness.netutil import free_port

T = 5  # seconds: every HTTP call in these tests has a timeout


@pytest.fixture
def client(api_url: str) -> Iterator[Toxiproxy]:
    host, port = api_url.removeprefix("http://").split(":")
    old = APIConsumer.host, APIConsumer.port
    server = Toxiproxy()
    server.update_api_consumer(host, int(port))
    try:
        yield server
    finally:
        APIConsumer.host, APIConsumer.port = old


def post(url: str, body: object = None, *, data: bytes | None = None, method: str = "POST") -> requests.Response:
    if data is not None:
        return requests.request(method, url, data=data, timeout=T)
    return requests.request(method, url, json=body, timeout=T)


def err(resp: requests.Response) -> tuple[int, str]:
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    body = resp.json()
    assert body["status"] == resp.status_code
    return resp.status_code, body["error"]


def still_serving(api_url: str) -> None:
    assert requests.get(api_url + "/version", timeout=T).json() == {"version": "2.12.0"}


# -- toxiproxy-python drives every endpoint ------------------------------------------------------
def test_toxiproxy_python_client_drives_every_endpoint(client: Toxiproxy, echo: EchoServer, api_url: str) -> None:
    assert client.running()
    assert b"2.12.0" in client.version()
    assert client.proxies() == {}

    proxy = client.create(upstream=echo.addr, name="echo")
    host, port = proxy.listen.split(":")
    assert host == "127.0.0.1" and int(port) > 0 and proxy.enabled
    with pytest.raises(ProxyExists):
        client.create(upstream=echo.addr, name="echo")
    assert set(client.proxies()) == {"echo"}
    assert client.get_proxy("echo").upstream == echo.addr
    assert client.get_proxy("missing") is None

    proxy.add_toxic(type="latency", attributes={"latency": 10, "jitter": 1})
    proxy.add_toxic(type="slicer", stream="upstream", name="cut", toxicity=0.5,
                    attributes={"average_size": 5, "size_variation": 1, "delay": 10})
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "cut"}
    assert toxics["cut"].stream == "upstream" and toxics["cut"].toxicity == 0.5
    assert toxics["latency_downstream"].attributes == {"latency": 10, "jitter": 1}
    with pytest.raises(ProxyExists):  # 409 for a toxic name already used
        proxy.add_toxic(type="latency", name="cut")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="nonsense")
    # updates: the package has no method for them; its APIConsumer posts them like the Ruby client
    APIConsumer.post("/proxies/echo/toxics/cut", json={"attributes": {"average_size": 7}}, timeout=T)
    assert proxy.get_toxic("cut").attributes == {"average_size": 7, "size_variation": 1, "delay": 10}

    s = connect(proxy.listen)
    s.sendall(b"ping")
    got = b""
    while len(got) < 4:
        got += s.recv(10)
    assert got == b"ping"
    s.close()

    with proxy.down():
        assert client.get_proxy("echo").enabled is False
        with pytest.raises(ConnectionRefusedError):
            connect(proxy.listen, timeout=1)
    assert client.get_proxy("echo").enabled is True

    assert proxy.destroy_toxic("cut")
    with pytest.raises(NotFound):
        proxy.destroy_toxic("cut")
    proxy.disable()
    assert client.reset()
    again = client.get_proxy("echo")
    assert again.enabled and again.toxics() == {}

    # the endpoints the package has no method for, through its own request helpers
    r = APIConsumer.post("/populate", json=[{"name": "p0", "upstream": echo.addr}], timeout=T)
    assert r.status_code == 201 and r.json()["proxies"][0]["name"] == "p0"
    assert "toxiproxy_proxy_sent_bytes_total" in APIConsumer.get("/metrics", timeout=T).text
    APIConsumer.delete("/proxies/p0", timeout=T)
    created = client.populate([{"name": "p1", "upstream": echo.addr, "listen": "127.0.0.1:0"}])
    assert [p.name for p in created] == ["p1"]
    assert set(client.proxies()) == {"echo", "p1"}
    assert client.destroy(client.get_proxy("p1"))
    client.destroy_all()
    assert client.proxies() == {}
    with pytest.raises(NotFound):
        APIConsumer.get("/proxies/echo", timeout=T)
    still_serving(api_url)


# -- JSON shapes ------------------------------------------------------------------------------------
def test_proxy_json_shape_and_defaults(api_url: str, echo: EchoServer) -> None:
    r = post(api_url + "/proxies", {"name": "a", "upstream": echo.addr})
    assert r.status_code == 201 and r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert list(body) == ["name", "listen", "upstream", "enabled", "toxics"]
    assert body["enabled"] is True and body["toxics"] == []

    r = post(api_url + "/proxies/a/toxics", {"type": "latency"})
    assert r.status_code == 200  # Toxiproxy answers 200, not 201, for a new toxic
    assert r.json() == {"attributes": {"latency": 0, "jitter": 0}, "name": "latency_downstream",
                        "type": "latency", "stream": "downstream", "toxicity": 1}
    for ttype, attrs in [("bandwidth", {"rate": 1}), ("slow_close", {"delay": 0}), ("timeout", {"timeout": 0}),
                         ("reset_peer", {"timeout": 0}), ("limit_data", {"bytes": 0}), ("noop", {}),
                         ("slicer", {"average_size": 1, "size_variation": 0, "delay": 0})]:
        r = post(api_url + "/proxies/a/toxics", {"type": ttype, "stream": "upstream",
                                                  "attributes": {k: v for k, v in attrs.items() if v}})
        assert r.status_code == 200, r.text
        assert r.json()["attributes"] == attrs
        assert r.json()["name"] == f"{ttype}_upstream"
    names = [t["name"] for t in requests.get(api_url + "/proxies/a/toxics", timeout=T).json()]
    # upstream toxics first, then downstream, each in creation order
    assert names == ["bandwidth_upstream", "slow_close_upstream", "timeout_upstream", "reset_peer_upstream",
                     "limit_data_upstream", "noop_upstream", "slicer_upstream", "latency_downstream"]
    assert requests.get(api_url + "/proxies", timeout=T).json()["a"]["toxics"][-1]["name"] == "latency_downstream"
    assert requests.get(api_url + "/proxies/a/toxics/noop_upstream", timeout=T).json()["attributes"] == {}


def test_keys_case_insensitive_unknown_ignored(api_url: str, echo: EchoServer) -> None:
    r = post(api_url + "/proxies", {"NAME": "ci", "Upstream": echo.addr, "whatever": [1, 2], "Enabled": False})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "ci" and r.json()["enabled"] is False
    r = post(api_url + "/proxies/ci/toxics", {"Type": "latency", "STREAM": "upstream", "Attributes": {"LATENCY": 5},
                                              "extra": True})
    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == {"latency": 5, "jitter": 0} and r.json()["stream"] == "upstream"


def test_toxic_update_merges_and_ignores_identity(api_url: str, echo: EchoServer) -> None:
    post(api_url + "/proxies", {"name": "u", "upstream": echo.addr})
    post(api_url + "/proxies/u/toxics", {"type": "latency", "name": "lat", "toxicity": 0.25,
                                         "attributes": {"latency": 100, "jitter": 7}})
    r = post(api_url + "/proxies/u/toxics/lat", {"attributes": {"latency": 50}, "name": "x", "type": "timeout",
                                                 "stream": "upstream"}, method="PATCH")
    assert r.status_code == 200
    assert r.json() == {"attributes": {"latency": 50, "jitter": 7}, "name": "lat", "type": "latency",
                        "stream": "downstream", "toxicity": 0.25}
    r = post(api_url + "/proxies/u/toxics/lat", {"toxicity": 1})
    assert r.json()["toxicity"] == 1 and r.json()["attributes"]["latency"] == 50


def test_listen_normalisation_and_rebind(api_url: str, echo: EchoServer) -> None:
    port = free_port()
    r = post(api_url + "/proxies", {"name": "n", "upstream": echo.addr, "listen": f"localhost:{port}"})
    assert r.json()["listen"] == f"127.0.0.1:{port}"
    r = post(api_url + "/proxies", {"name": "z", "upstream": echo.addr, "listen": "127.0.0.1:0"})
    zport = int(r.json()["listen"].split(":")[1])
    assert zport > 0
    r = post(api_url + "/proxies", {"name": "d", "upstream": echo.addr, "listen": "localhost:0", "enabled": False})
    assert r.json()["listen"] == "localhost:0"  # a disabled proxy keeps the literal string
    # disable then enable rebinds the same port
    assert post(api_url + "/proxies/z", {"enabled": False}).json()["enabled"] is False
    with pytest.raises(ConnectionRefusedError):
        connect(f"127.0.0.1:{zport}", timeout=1)
    r = post(api_url + "/proxies/z", {"enabled": True}, method="PATCH")
    assert r.json()["listen"] == f"127.0.0.1:{zport}" and r.json()["enabled"] is True
    connect(f"127.0.0.1:{zport}").close()
    # changing listen moves the proxy
    other = free_port()
    r = post(api_url + "/proxies/z", {"listen": f"127.0.0.1:{other}"})
    assert r.status_code == 200 and r.json()["listen"] == f"127.0.0.1:{other}"
    with pytest.raises(ConnectionRefusedError):
        connect(f"127.0.0.1:{zport}", timeout=1)


# -- errors -------------------------------------------------------------------------------------------
def test_every_error_status_and_message(api_url: str, echo: EchoServer) -> None:
    P = api_url + "/proxies"
    assert err(post(P, {"upstream": echo.addr})) == (400, "missing required field: name")
    assert err(post(P, {"name": "e"})) == (400, "missing required field: upstream")
    assert err(post(P, data=b"")) == (400, "bad request body: EOF")
    code, msg = err(post(P, data=b"{not json"))
    assert code == 400 and msg.startswith("bad request body: ")
    assert err(post(P, {"name": "e", "upstream": echo.addr, "enabled": "yes"})) == (
        400, "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled of type bool")
    assert err(post(P, [1])) == (400, ("bad request body: json: cannot unmarshal array into Go value of type "
                                       "toxiproxy.Proxy"))
    assert post(P, {"name": "e", "upstream": echo.addr}).status_code == 201
    assert err(post(P, {"name": "e", "upstream": echo.addr})) == (409, "proxy already exists")

    for method in ("GET", "POST", "PATCH", "DELETE"):
        assert err(post(P + "/nope", {}, method=method)) == (404, "proxy not found")
    assert err(requests.get(P + "/nope/toxics", timeout=T)) == (404, "proxy not found")
    assert err(post(P + "/nope/toxics", {"type": "latency"})) == (404, "proxy not found")
    assert err(requests.get(P + "/nope/toxics/t", timeout=T)) == (404, "proxy not found")

    T_ = P + "/e/toxics"
    assert err(post(T_, data=b"")) == (400, "bad request body: EOF")
    assert err(post(T_, {"type": "latency", "stream": "sideways"})) == (
        400, "stream was invalid, can be either upstream or downstream")
    assert err(post(T_, {"type": "Latency"})) == (400, "invalid toxic type")
    assert err(post(T_, {"type": "down"})) == (400, "invalid toxic type")
    assert err(post(T_, {"type": "latency", "toxicity": "high"})) == (
        400, ("bad request body: json: cannot unmarshal string into Go struct field ToxicWrapper.toxicity "
              "of type float32"))
    assert err(post(T_, {"type": "latency", "attributes": {"latency": "slow"}})) == (
        400, ("bad request body: json: cannot unmarshal string into Go struct field .attributes.latency "
              "of type int64"))
    assert err(post(T_, {"type": "latency", "attributes": {"latency": 1.5}}))[0] == 400
    assert err(post(T_, {"type": "latency", "attributes": {"latency": -1}}))[1].startswith(
        "bad request body: latency attribute latency must be at least 0")
    assert "average_size must be greater than 0" in err(post(T_, {"type": "slicer"}))[1]
    assert "rate must be greater than 0" in err(post(T_, {"type": "bandwidth", "attributes": {"rate": 0}}))[1]
    assert "bytes must be at least 0" in err(post(T_, {"type": "limit_data", "attributes": {"bytes": -5}}))[1]
    assert post(T_, {"type": "latency", "name": "same"}).status_code == 200
    # names are unique across both streams
    assert err(post(T_, {"type": "timeout", "name": "same", "stream": "upstream"})) == (409, "toxic already exists")
    assert err(requests.get(T_ + "/ghost", timeout=T)) == (404, "toxic not found")
    assert err(post(T_ + "/ghost", {"toxicity": 0.5})) == (404, "toxic not found")
    assert err(requests.delete(T_ + "/ghost", timeout=T)) == (404, "toxic not found")
    assert err(post(T_ + "/same", {"attributes": {"jitter": -3}}))[0] == 400
    assert err(post(T_ + "/same", data=b"[]"))[0] == 400
    assert requests.get(T_ + "/same", timeout=T).json()["attributes"] == {"latency": 0, "jitter": 0}

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    bport = busy.getsockname()[1]
    try:
        assert err(post(P, {"name": "b", "upstream": echo.addr, "listen": f"127.0.0.1:{bport}"})) == (
            500, f"listen tcp 127.0.0.1:{bport}: bind: address already in use")
        assert err(post(P + "/e", {"listen": f"127.0.0.1:{bport}"}))[0] == 500
    finally:
        busy.close()
    assert "b" not in requests.get(P, timeout=T).json()
    still_serving(api_url)


def test_router_answers(api_url: str) -> None:
    r = requests.get(api_url + "/nowhere", timeout=T)
    assert (r.status_code, r.text) == (404, "404 page not found\n")
    assert requests.get(api_url + "/proxies/", timeout=T).status_code == 404
    assert requests.put(api_url + "/proxies", timeout=T).status_code == 405
    assert requests.get(api_url + "/reset", timeout=T).status_code == 405
    r = requests.get(api_url + "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"}, timeout=T)
    assert (r.status_code, r.text) == (403, "User agent not allowed\n")
    r = requests.get(api_url + "/version", timeout=T)
    assert r.text == '{"version": "2.12.0"}\n'
    assert requests.get(api_url + "/proxies", timeout=T).json() == {}


def test_populate(api_url: str, echo: EchoServer) -> None:
    url = api_url + "/populate"
    r = post(url, [])
    assert (r.status_code, r.json()) == (201, {"proxies": []})
    r = post(url, [{"name": "one", "upstream": echo.addr}, {"name": "two"}])
    assert r.status_code == 400
    assert r.json()["error"] == "missing required field: upstream at proxy 2"
    assert requests.get(api_url + "/proxies", timeout=T).json() == {}  # nothing created
    assert post(url, [{"upstream": echo.addr}]).json()["error"] == "missing required field: name at proxy 1"
    assert post(url, {"name": "x"}).status_code == 400

    port = free_port()
    listen = f"127.0.0.1:{port}"
    r = post(url, [{"name": "one", "upstream": echo.addr, "listen": listen},
                   {"name": "two", "upstream": echo.addr, "enabled": False}])
    assert r.status_code == 201
    assert [p["name"] for p in r.json()["proxies"]] == ["one", "two"]
    assert r.json()["proxies"][1]["enabled"] is False
    post(api_url + "/proxies/one/toxics", {"type": "latency"})
    # an identical entry is left untouched (toxics kept)
    r = post(url, [{"name": "one", "upstream": echo.addr, "listen": listen}])
    assert r.json()["proxies"][0]["toxics"][0]["name"] == "latency_downstream"
    # a changed one is replaced
    r = post(url, [{"name": "one", "upstream": "127.0.0.1:1", "listen": listen}])
    assert r.json()["proxies"][0]["toxics"] == [] and r.json()["proxies"][0]["upstream"] == "127.0.0.1:1"

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        r = post(url, [{"name": "three", "upstream": echo.addr},
                       {"name": "four", "upstream": echo.addr, "listen": f"127.0.0.1:{busy.getsockname()[1]}"}])
    finally:
        busy.close()
    assert r.status_code == 500
    body = r.json()
    assert "address already in use" in body["error"] and body["status"] == 500
    assert [p["name"] for p in body["proxies"]] == ["three"]
    assert set(requests.get(api_url + "/proxies", timeout=T).json()) == {"one", "two", "three"}


def test_reset_enables_and_clears(api_url: str, echo: EchoServer) -> None:
    post(api_url + "/proxies", {"name": "r", "upstream": echo.addr})
    post(api_url + "/proxies/r/toxics", {"type": "latency"})
    post(api_url + "/proxies/r", {"enabled": False})
    r = requests.post(api_url + "/reset", timeout=T)
    assert r.status_code == 204 and r.content == b""
    p = requests.get(api_url + "/proxies/r", timeout=T).json()
    assert p["enabled"] is True and p["toxics"] == []
    assert requests.delete(api_url + "/proxies/r", timeout=T).status_code == 204


def test_loopback_only_addresses(api_url: str, echo: EchoServer) -> None:
    code, msg = err(post(api_url + "/proxies", {"name": "w", "upstream": echo.addr, "listen": "0.0.0.0:0"}))
    assert code == 400 and "not a loopback address" in msg
    code, msg = err(post(api_url + "/proxies", {"name": "w", "upstream": "example.com:80"}))
    assert code == 400 and "upstream 'example.com:80'" in msg
    still_serving(api_url)


def test_metrics_count_bytes(api_url: str, echo: EchoServer) -> None:
    listen = post(api_url + "/proxies", {"name": "m", "upstream": echo.addr}).json()["listen"]
    s = connect(listen)
    s.sendall(b"x" * 1000)
    got = 0
    while got < 1000:
        got += len(s.recv(4096))
    s.close()
    text = requests.get(api_url + "/metrics", timeout=T).text
    line = (f'toxiproxy_proxy_received_bytes_total{{direction="upstream",listener="{listen}",proxy="m",'
            f'upstream="{echo.addr}"}} 1000.0')
    assert line in text
    assert 'toxiproxy_proxy_sent_bytes_total{direction="downstream"' in text
    assert "_created" not in text  # like Toxiproxy: only the _total series


def test_upstream_refusing_closes_client(api_url: str) -> None:
    dead = free_port()
    listen = post(api_url + "/proxies", {"name": "dead", "upstream": f"127.0.0.1:{dead}"}).json()["listen"]
    s = connect(listen)
    s.settimeout(5)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()
    still_serving(api_url)
