"""The PyEvmServer lifecycle: loopback only, free ports, clean stop, in-process calls."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from harness.chain.pyevm import PyEvmServer
from harness.errors import HarnessError, PortInUseError, RemoteAddressError, RpcError


def _threads_named(prefix: str) -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()
    ]


def _port_is_free(port: int) -> bool:
    """Nothing listens there any more, and a new server can listen there again (connections the
    old one closed may sit in TIME_WAIT, which SO_REUSEADDR allows, as every server sets it)."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
    return True


def test_start_serves_and_stop_frees_everything() -> None:
    server = PyEvmServer()
    url = server.start()
    assert url == server.url and url.startswith("http://127.0.0.1:")
    port = server.port
    assert port > 0 and server.running
    answer = requests.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=10
    ).json()
    assert answer == {"jsonrpc": "2.0", "id": 1, "result": "0x7a69"}
    # a keep-alive connection left open must not hold the stop up
    session = requests.Session()
    session.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}, timeout=10
    )
    server.stop()
    assert not server.running
    assert _threads_named(f"pyevm-rpc-{port}") == []
    assert _port_is_free(port)
    with pytest.raises(requests.ConnectionError):
        session.post(
            url,
            json={"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber"},
            timeout=5,
        )
    session.close()
    server.stop()  # idempotent


def test_context_manager_and_interval_timer_are_stopped() -> None:
    with PyEvmServer(block_time=0.05) as server:
        port = server.port
        assert server.call("anvil_getAutomine") is False
    assert _threads_named(f"pyevm-rpc-{port}") == []
    assert _port_is_free(port)


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is already in use"):
            PyEvmServer(port=port).start()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(RemoteAddressError, match="not a loopback address"):
        PyEvmServer(host=host)


def test_a_chosen_port_and_localhost_work() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with PyEvmServer(host="localhost", port=port) as server:
        assert server.url == f"http://localhost:{port}"
        assert server.call("eth_chainId") == "0x7a69"


def test_start_twice_is_refused() -> None:
    with PyEvmServer() as server, pytest.raises(HarnessError, match="already started"):
        server.start()


def test_in_process_call_raises_node_errors() -> None:
    with PyEvmServer() as server:
        assert server.call("eth_blockNumber") == "0x0"
        server.call("anvil_mine", "0x2")
        assert server.call("eth_blockNumber") == "0x2"
        with pytest.raises(RpcError) as caught:
            server.call("eth_nope")
        assert caught.value.code == -32601
    with pytest.raises(HarnessError, match="not running"):
        server.call("eth_blockNumber")


def test_serve_forever_returns_when_stopped() -> None:
    server = PyEvmServer()
    done = threading.Event()

    def foreground() -> None:
        try:
            server.serve_forever()
        finally:
            done.set()

    runner = threading.Thread(target=foreground, name="serve-forever-test", daemon=True)
    runner.start()
    deadline = 10.0
    import time

    started = time.monotonic()
    while not server.running and time.monotonic() - started < deadline:
        time.sleep(0.01)
    assert server.call("eth_chainId") == "0x7a69"
    server.stop()
    assert done.wait(deadline), "serve_forever did not return after stop()"
    runner.join(deadline)


def test_answer_before_mining_still_shows_the_block_to_the_next_request() -> None:
    from eth_account import Account

    from harness.chain.pyevm import dev_keys

    signer = Account.from_key(dev_keys()[0])
    server = PyEvmServer()
    server.answer_before_mining = True
    with server:
        session = requests.Session()
        assert server.url is not None
        for nonce in range(5):
            raw = signer.sign_transaction(
                {
                    "to": "0x" + "42" * 20,
                    "value": 1,
                    "gas": 21_000,
                    "chainId": 31337,
                    "nonce": nonce,
                    "maxFeePerGas": 10**10,
                    "maxPriorityFeePerGas": 10**9,
                }
            ).raw_transaction.to_0x_hex()
            sent = session.post(
                server.url,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_sendRawTransaction",
                    "params": [raw],
                },
                timeout=10,
            ).json()
            receipt = session.post(
                server.url,
                json={
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "eth_getTransactionReceipt",
                    "params": [sent["result"]],
                },
                timeout=10,
            ).json()
            assert receipt["result"]["blockNumber"] == hex(nonce + 1)
        session.close()


def test_concurrent_clients_each_get_their_transactions_mined() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from eth_account import Account

    from harness.chain.pyevm import dev_keys

    def client(url: str, index: int) -> list[str]:
        signer = Account.from_key(dev_keys()[index])
        session = requests.Session()
        hashes = []
        for nonce in range(8):
            raw = signer.sign_transaction(
                {
                    "to": "0x" + "42" * 20,
                    "value": 1,
                    "gas": 21_000,
                    "chainId": 31337,
                    "nonce": nonce,
                    "maxFeePerGas": 10**10,
                    "maxPriorityFeePerGas": 10**9,
                }
            ).raw_transaction.to_0x_hex()
            body = {
                "jsonrpc": "2.0",
                "id": nonce,
                "method": "eth_sendRawTransaction",
                "params": [raw],
            }
            hashes.append(session.post(url, json=body, timeout=30).json()["result"])
        session.close()
        return hashes

    with PyEvmServer() as server:
        assert server.url is not None
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: client(server.url, i), range(4)))  # type: ignore[arg-type]
        for hashes in results:
            for tx_hash in hashes:
                assert (
                    server.call("eth_getTransactionReceipt", tx_hash)["status"] == "0x1"
                )
        assert server.call("eth_blockNumber") == hex(32)
        assert server.call("eth_getBalance", "0x" + "42" * 20, "latest") == hex(32)
