"""JSON-RPC toxics, through real sockets, against a small real JSON-RPC server and against anvil."""

from __future__ import annotations

import json

import pytest
import requests
from eth_account import Account
from eth_hash.auto import keccak
from proxyfixtures import EchoServer, RpcServer, connect, recv_exactly
from toxiproxy.toxic import Toxic as PyToxic
from web3 import Web3

from harness.proxy.control import ProxyControl

T = 5


def call(session: requests.Session, url: str, method: str, params: list | None = None, id_: int = 1) -> dict:
    r = session.post(url, json={"jsonrpc": "2.0", "id": id_, "method": method, "params": params or []}, timeout=T)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def node(control: ProxyControl, rpc_server: RpcServer) -> tuple[str, RpcServer]:
    ep = control.create("node", rpc_server.addr)
    return ep.url, rpc_server


def test_rpc_error_json_error_for_chosen_methods(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, srv = node
    with requests.Session() as s:
        assert call(s, url, "eth_chainId")["result"] == hex(31337)  # keep-alive connection opened first
        control.add_toxic("node", "rpc_error", attributes={"methods": ["eth_blockNumber"], "code": -32005,
                                                           "message": "limit exceeded"})
        r = call(s, url, "eth_blockNumber", id_=7)
        assert r == {"jsonrpc": "2.0", "id": 7, "error": {"code": -32005, "message": "limit exceeded"}}
        assert call(s, url, "eth_chainId")["result"] == hex(31337)
    assert srv.backend.methods() == ["eth_chainId", "eth_chainId"]  # the failed call never reached the node


def test_rpc_error_http_status(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, _ = node
    name = control.add_toxic("node", "rpc_error", attributes={"http_status": 429, "retry_after": 3})
    with requests.Session() as s:
        r = s.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=T)
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
        control.update_toxic("node", name, attributes={"http_status": 503})
        r = s.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "eth_chainId", "params": []}, timeout=T)
        assert r.status_code == 503
        control.remove_toxic("node", name)
        assert call(s, url, "eth_chainId")["result"] == hex(31337)


def test_rpc_error_toxicity_is_per_call(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, _ = node
    control.add_toxic("node", "rpc_error", toxicity=0.5)
    with requests.Session() as s:
        errors = sum("error" in call(s, url, "eth_chainId") for _ in range(200))
    assert 50 <= errors <= 150


def test_batch_keeps_order_and_forwards_the_rest(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, srv = node
    control.add_toxic("node", "rpc_error", attributes={"methods": ["eth_chainId"]})
    batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": []}
             for i, m in enumerate(["eth_blockNumber", "eth_chainId", "net_version"])]
    r = requests.post(url, json=batch, timeout=T).json()
    assert [x["id"] for x in r] == [0, 1, 2]
    assert r[0]["result"] == hex(100) and r[1]["error"]["code"] == -32000 and r[2]["result"] == "31337"
    assert srv.backend.methods() == ["eth_blockNumber", "net_version"]


def test_stale_head(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, srv = node
    control.add_toxic("node", "rpc_stale_head", attributes={"blocks": 5})
    addr = "0x" + "11" * 20
    with requests.Session() as s:
        assert call(s, url, "eth_blockNumber")["result"] == hex(95)
        assert call(s, url, "eth_getBalance", [addr, "latest"])["result"] == hex(95)
        assert call(s, url, "eth_getBalance", [addr])["result"] == hex(95)  # omitted block means latest
        assert call(s, url, "eth_getBlockByNumber", ["latest", False])["result"]["number"] == hex(95)
        assert call(s, url, "eth_getBlockByNumber", [hex(99), False])["result"] is None
        assert call(s, url, "eth_getBlockByNumber", [hex(90), False])["result"]["number"] == hex(90)
        assert call(s, url, "eth_getBalance", [addr, hex(98)])["error"]["message"] == "header not found"
        srv.backend.head = 200
        assert call(s, url, "eth_blockNumber")["result"] == hex(195)
        assert call(s, url, "eth_chainId")["result"] == hex(31337)  # other methods untouched


def test_drop_tx_answers_hash_never_forwards(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, srv = node
    control.add_toxic("node", "rpc_drop_tx")
    raw = "0x02f86c827a6980843b9aca00"
    r = call(requests.Session(), url, "eth_sendRawTransaction", [raw])
    assert r["result"] == "0x" + keccak(bytes.fromhex(raw[2:])).hex()
    assert "eth_sendRawTransaction" not in srv.backend.methods()


def test_wrong_chain(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, srv = node
    control.add_toxic("node", "rpc_wrong_chain", attributes={"chain_id": 5})
    with requests.Session() as s:
        assert call(s, url, "eth_chainId")["result"] == "0x5"
        assert call(s, url, "net_version")["result"] == "5"
        assert call(s, url, "eth_blockNumber")["result"] == hex(100)
    assert srv.backend.methods() == ["eth_blockNumber"]


def test_rpc_toxics_listed_like_any_and_upstream_refused(control: ProxyControl, api_url: str,
                                                          node: tuple[str, RpcServer]) -> None:
    control.add_toxic("node", "rpc_error", name="e1", attributes={"methods": ["eth_call"]})
    listed = requests.get(api_url + "/proxies/node/toxics", timeout=T).json()
    assert listed == [{"attributes": {"methods": ["eth_call"], "code": -32000, "message": "internal error",
                                      "http_status": 0, "retry_after": 1},
                       "name": "e1", "type": "rpc_error", "stream": "downstream", "toxicity": 1}]
    PyToxic(**listed[0])  # a client that knows only the standard types reads it fine
    r = requests.post(api_url + "/proxies/node/toxics", json={"type": "rpc_error", "stream": "upstream"}, timeout=T)
    assert r.status_code == 400 and "downstream" in r.json()["error"]
    r = requests.post(api_url + "/proxies/node/toxics", json={"type": "rpc_stale_head"}, timeout=T)
    assert r.status_code == 400 and "blocks must be greater than 0" in r.json()["error"]
    r = requests.post(api_url + "/proxies/node/toxics",
                      json={"type": "rpc_error", "attributes": {"methods": "eth_call"}}, timeout=T)
    assert r.status_code == 400 and "of type []string" in r.json()["error"]


def test_non_json_traffic_passes(control: ProxyControl, echo: EchoServer, node: tuple[str, RpcServer]) -> None:
    ep = control.create("raw", echo.addr)
    for proxy in ("raw", "node"):
        control.add_toxic(proxy, "rpc_error")
        control.add_toxic(proxy, "rpc_drop_tx")
    s = connect(f"{ep.host}:{ep.port}")
    for payload in (b"\x00\x01binary", b"POST but not http\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        s.sendall(payload)
        assert recv_exactly(s, len(payload)) == payload
    s.close()
    url, _ = node
    assert requests.get(url + "/health", timeout=T).json() == {"ok": True}  # not a POST: untouched
    r = requests.post(url, data=b"not json", headers={"Content-Type": "application/json"}, timeout=T)
    assert r.status_code == 400  # the node's own answer to a body it cannot read


def test_rpc_toxics_compose_with_latency(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, _ = node
    control.add_toxic("node", "latency", attributes={"latency": 20})
    control.add_toxic("node", "rpc_wrong_chain", attributes={"chain_id": 10})
    with requests.Session() as s:
        for _ in range(3):
            assert call(s, url, "eth_chainId")["result"] == "0xa"
            assert call(s, url, "eth_blockNumber")["result"] == hex(100)


# -- against a real node ----------------------------------------------------------------------------
def test_against_anvil(control: ProxyControl, anvil: str) -> None:
    ep = control.create("anvil", anvil)
    direct = Web3(Web3.HTTPProvider(f"http://{anvil}", request_kwargs={"timeout": T}))
    via = Web3(Web3.HTTPProvider(ep.url, request_kwargs={"timeout": T}))
    direct.provider.make_request("anvil_mine", [hex(10)])
    head = direct.eth.block_number
    assert via.eth.block_number == head

    control.add_toxic("anvil", "rpc_stale_head", name="stale", attributes={"blocks": 3})
    assert via.eth.block_number == head - 3
    assert via.eth.get_block("latest")["number"] == head - 3
    control.remove_toxic("anvil", "stale")

    control.add_toxic("anvil", "rpc_wrong_chain", name="chain", attributes={"chain_id": 1})
    assert via.eth.chain_id == 1 and direct.eth.chain_id == 31337
    control.remove_toxic("anvil", "chain")

    acct = Account.create()
    direct.provider.make_request("anvil_setBalance", [acct.address, hex(10**18)])
    tx = {"to": "0x" + "22" * 20, "value": 1, "gas": 21000, "maxFeePerGas": 10**10,
          "maxPriorityFeePerGas": 10**9, "nonce": 0, "chainId": 31337, "type": 2}
    signed = acct.sign_transaction(tx)
    control.add_toxic("anvil", "rpc_drop_tx", name="drop")
    sent = via.eth.send_raw_transaction(signed.raw_transaction)
    assert sent == signed.hash
    assert direct.eth.get_transaction_count(acct.address, "pending") == 0  # never reached the node
    control.remove_toxic("anvil", "drop")
    assert via.eth.send_raw_transaction(signed.raw_transaction) == signed.hash
    assert direct.eth.get_transaction_count(acct.address, "pending") == 1

    control.add_toxic("anvil", "rpc_error", name="err", attributes={"methods": ["eth_getBalance"]})
    with pytest.raises(Exception, match="internal error"):
        via.eth.get_balance(acct.address)
    assert via.eth.block_number >= head
    assert json.loads(json.dumps(control.toxics("anvil")))[0]["type"] == "rpc_error"


def test_keep_alive_connection_is_reused(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, srv = node
    with requests.Session() as s:
        call(s, url, "eth_chainId")
        control.add_toxic("node", "rpc_wrong_chain", name="wc", attributes={"chain_id": 9})
        for _ in range(10):
            assert call(s, url, "eth_chainId")["result"] == "0x9"
            assert call(s, url, "eth_blockNumber")["result"] == hex(100)
        control.update_toxic("node", "wc", attributes={"methods": ["net_version"]})
        assert call(s, url, "eth_chainId")["result"] == hex(31337)
        assert call(s, url, "net_version")["result"] == "9"
    assert srv.backend.connections == 1  # one keep-alive connection carried every request


def _http(body: dict) -> bytes:
    raw = json.dumps(body).encode()
    return b"POST / HTTP/1.1\r\nHost: node\r\nContent-Length: %d\r\n\r\n%s" % (len(raw), raw)


def test_pipelined_requests_keep_their_order(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    _, srv = node
    control.add_toxic("node", "rpc_error", attributes={"methods": ["eth_blockNumber"]})
    ep = control.endpoint("node")
    s = connect(f"{ep.host}:{ep.port}")
    size = 3_000_000
    calls = [("test_big", [size]), ("eth_blockNumber", []), ("eth_chainId", []), ("eth_blockNumber", [])]
    s.sendall(b"".join(_http({"jsonrpc": "2.0", "id": i, "method": m, "params": p})
                       for i, (m, p) in enumerate(calls)))
    f = s.makefile("rb")
    answers = []
    for _ in calls:
        status = f.readline()
        assert status.startswith(b"HTTP/1.1 200"), status
        length = 0
        while (line := f.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        answers.append(json.loads(f.read(length)))
    s.close()
    assert [a["id"] for a in answers] == [0, 1, 2, 3]
    assert answers[0]["result"] == "x" * size  # a big untouched response arrives whole
    assert "error" in answers[1] and "error" in answers[3]
    assert answers[2]["result"] == hex(31337)
    assert srv.backend.methods() == ["test_big", "eth_chainId"]


def test_gzip_and_chunked_responses(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    url, _ = node
    control.add_toxic("node", "rpc_stale_head", attributes={"blocks": 2})
    headers = {"X-Test-Encoding": "gzip-chunked"}
    with requests.Session() as s:
        for method, want in [("eth_blockNumber", hex(98)), ("eth_chainId", hex(31337))]:
            r = s.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []}, headers=headers,
                       timeout=T)
            assert r.status_code == 200 and r.json()["result"] == want
        batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []} for i in range(3)]
        r = s.post(url, json=batch, headers=headers, timeout=T)
        assert [x["result"] for x in r.json()] == [hex(98)] * 3


def test_calls_are_counted_per_method_with_and_without_toxics(control: ProxyControl, node: tuple[str, RpcServer]) -> None:
    from harness.drill.predicates import proxy_counts

    url, _ = node
    before = proxy_counts(control.api_url)
    assert before is not None
    with requests.Session() as s:
        call(s, url, "eth_chainId")
        call(s, url, "eth_sendRawTransaction", ["0x00"])
        batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": []} for i, m in enumerate(["eth_blockNumber", "eth_chainId"])]
        requests.post(url, json=batch, timeout=T)
        control.add_toxic("node", "rpc_error", attributes={"methods": ["eth_chainId"]})
        call(s, url, "eth_chainId")  # answered by the toxic: still a call the client made
        s.post(url, data=b"not json", headers={"Content-Type": "application/json"}, timeout=T)  # passes uncounted
    after = proxy_counts(control.api_url)
    assert after is not None
    got = {m: after.calls.get(("node", m), 0) - before.calls.get(("node", m), 0)
           for m in ("eth_chainId", "eth_sendRawTransaction", "eth_blockNumber")}
    assert got == {"eth_chainId": 3, "eth_sendRawTransaction": 1, "eth_blockNumber": 1}
    assert after.sends("node") - before.sends("node") == 1


def test_counts_cannot_be_read_without_a_server() -> None:
    from harness.drill.predicates import proxy_counts

    assert proxy_counts(None) is None
    assert proxy_counts("http://127.0.0.1:9") is None  # nothing listens on the discard port
