"""A real world for the reference agent's tests: chain, contracts, keys, alert receiver, the agent.

Everything here is real: a chain process (anvil or py-evm), the drill contracts deployed on it, a
key file with mode 0600, an HTTP server that receives the agent's incident events, the agent as a
subprocess, and a counterparty thread opening escrows for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from eth_account import Account

from harness.accounts import DevAccount, new_key
from harness.chain.base import Chain, start_chain
from harness.contracts import Deployment, deploy_contracts, send_tx
from harness.netutil import free_port
from harness.procs import spawn, stop_process

REPO = Path(__file__).resolve().parents[2]
FUND_WEI = 10 * 10**18
FUND_TOKENS = 10_000 * 10**18
ESCROW_WEI = 10**15


class AlertReceiver:
    """An HTTP server on loopback that stores every event POSTed to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_next = 0  # answer 500 to this many requests
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests += 1
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        self.send_response(500)
                        self.end_headers()
                        return
                    receiver.events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["kind"] == kind]

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for e in self.events:
                    if pred(e):
                        return e
            time.sleep(0.05)
        with self._lock:
            seen = [(e["kind"], e["severity"], e["status"]) for e in self.events]
        raise AssertionError(f"no matching event within {timeout}s; received {seen}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Counterparty:
    """Opens escrows for the agent every ``every`` seconds with deadlines ``ahead`` seconds out."""

    def __init__(self, chain: Chain, deployment: Deployment, agent: str, *, every: float = 0.5, ahead: int = 15) -> None:
        self.chain = chain
        self.owner = chain.accounts[0]
        self.escrow = deployment.escrow_contract(chain.w3)
        self.agent = agent
        self.every = every
        self.ahead = ahead
        self.opened: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Counterparty:
        self._thread.start()
        return self

    def pause(self) -> None:
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def _run(self) -> None:
        nonce = self.chain.nonce(self.owner.address, "pending")
        while not self._stop.wait(self.every):
            if self._paused.is_set():
                continue
            try:
                blk = self.chain.rpc("eth_getBlockByNumber", "latest", False)
                deadline = int(blk["timestamp"], 16) + self.ahead
                base = int(blk["baseFeePerGas"], 16)
                data = self.escrow.encode_abi("open", [self.agent, deadline])
                tx = {"type": 2, "chainId": self.chain.chain_id, "nonce": nonce, "to": self.escrow.address, "value": ESCROW_WEI,
                      "data": data, "gas": 200_000, "maxFeePerGas": 3 * base + 300 * 10**9, "maxPriorityFeePerGas": 2 * 10**9}
                signed = Account.sign_transaction(tx, self.owner.key)
                self.opened.append(self.chain.rpc("eth_sendRawTransaction", signed.raw_transaction.to_0x_hex()))
                nonce += 1
            except Exception as exc:  # noqa: BLE001 - keep opening; the test looks at what landed
                self.errors.append(repr(exc))
                try:
                    nonce = self.chain.nonce(self.owner.address, "pending")
                except Exception:  # noqa: BLE001, S110 - the next round retries
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def fund(chain: Chain, deployment: Deployment, address: str, *, wei: int = FUND_WEI, tokens: int = FUND_TOKENS) -> None:
    owner = chain.accounts[0]
    send_tx(chain.w3, owner, {"to": address, "value": wei, "gas": 21_000})
    token = deployment.token_contract(chain.w3)
    send_tx(chain.w3, owner, token.functions.mint(address, tokens).build_transaction({"from": owner.address, "gas": 100_000}))


@dataclass
class AgentProcess:
    """The reference agent as a subprocess with the contract's environment."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[Any] | None = None
    control_url: str = ""
    token: str = ""
    restarts: int = 0
    _log: Any = field(default=None, repr=False)

    def start(self) -> AgentProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed by stop()
        self.proc = spawn([sys.executable, "-m", "reference_agent"], env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_healthy(self, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                with urllib.request.urlopen(self.control_url + "/health", timeout=1) as r:
                    h = json.loads(r.read())
                    if h.get("last_block", -1) >= 0:
                        return h
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"agent not healthy within {timeout}s:\n{self.output()[-3000:]}")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.control_url + "/health", timeout=2) as r:
            return json.loads(r.read())

    def operator(self, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(self.control_url + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token if token is not None else self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, 9)
        self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        rc = None
        if self.proc is not None:
            rc = stop_process(self.proc, grace=5.0, name="reference agent")
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def agent_env(
    tmp: Path, chain_urls: list[str], deployment: Deployment, hot: DevAccount, cold: str, alert_url: str,
    *, defects: str = "", token: str = "operator-secret-token", extra: dict[str, str] | None = None,
) -> tuple[dict[str, str], str]:
    key_file = tmp / "hot.key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, hot.key.encode())
        os.close(fd)
    contracts = tmp / "contracts.json"
    contracts.write_text(json.dumps(deployment.to_json()))
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO / "fixtures"),
        "AGENT_RPC_URLS": ",".join(chain_urls),
        "AGENT_CHAIN_ID": "31337",
        "AGENT_KEY_FILE": str(key_file),
        "AGENT_COLD_WALLET": cold,
        "AGENT_CONTRACTS": str(contracts),
        "AGENT_ALERT_URL": alert_url,
        "AGENT_CONTROL_ADDR": f"127.0.0.1:{port}",
        "AGENT_OPERATOR_TOKEN": token,
        "AGENT_STATE_DIR": str(state),
        "AGENT_PROFILE": "drill",
        "AGENT_DEFECTS": defects,
    }
    env.update(extra or {})
    return env, f"http://127.0.0.1:{port}"


def escrow_states(chain: Chain, deployment: Deployment) -> dict[int, tuple[str, int, int, int]]:
    esc = deployment.escrow_contract(chain.w3)
    count = esc.functions.escrowCount().call()
    return {i: tuple(esc.functions.escrows(i).call()) for i in range(1, count + 1)}  # type: ignore[misc]


def proof_txs(chain: Chain, deployment: Deployment, sender: str, from_block: int = 0) -> list[dict[str, Any]]:
    """Every submitProof transaction ``sender`` sent, with its receipt status and escrow id."""
    sel = deployment.escrow_contract(chain.w3).encode_abi("submitProof", [0, b"\0" * 32])[:10]
    out = []
    head = chain.block_number()
    for n in range(from_block, head + 1):
        blk = chain.rpc("eth_getBlockByNumber", hex(n), True)
        for tx in blk["transactions"]:
            if tx["from"].lower() == sender.lower() and tx["input"].startswith(sel):
                rcpt = chain.rpc("eth_getTransactionReceipt", tx["hash"])
                out.append({"escrow": int(tx["input"][10:74], 16), "status": int(rcpt["status"], 16), "nonce": int(tx["nonce"], 16), "block": n})
    return out


def new_hot() -> DevAccount:
    return new_key()


class Attacker:
    """Signs with the leaked hot key and drains ETH and tokens every ``every`` seconds."""

    def __init__(self, chain: Chain, deployment: Deployment, victim: DevAccount, *, every: float = 0.5,
                 eth_per_round: int = 25 * 10**16, tokens_per_round: int = 10 * 10**18) -> None:
        self.chain, self.victim, self.every = chain, victim, every
        self.token = deployment.token_contract(chain.w3)
        self.address = new_key().address
        self.eth_per_round, self.tokens_per_round = eth_per_round, tokens_per_round
        self.sent: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Attacker:
        self._thread.start()
        return self

    def _send(self, to: str, value: int, data: str, gas: int) -> None:
        base = int(self.chain.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
        tx = {"type": 2, "chainId": self.chain.chain_id, "nonce": self.chain.nonce(self.victim.address, "pending"), "to": to,
              "value": value, "data": data, "gas": gas, "maxFeePerGas": 3 * base + 3 * 10**9, "maxPriorityFeePerGas": 3 * 10**9}
        signed = Account.sign_transaction(tx, self.victim.key)
        try:
            self.sent.append(self.chain.rpc("eth_sendRawTransaction", signed.raw_transaction.to_0x_hex()))
        except Exception:  # noqa: BLE001, S110
            pass  # lost the race for the nonce; next round

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                tok = int(self.token.functions.balanceOf(self.victim.address).call())
                if tok:
                    data = self.token.encode_abi("transfer", [self.address, min(tok, self.tokens_per_round)])
                    self._send(self.token.address, 0, data, 80_000)
                bal = self.chain.balance(self.victim.address)
                amount = min(self.eth_per_round, bal - 21_000 * 10 * 10**9)
                if amount > 0:
                    self._send(self.address, amount, "0x", 21_000)
            except Exception:  # noqa: BLE001, S110 - a round that fails is retried
                pass
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Forwarder:
    """A TCP forwarder on loopback in front of an RPC endpoint that a test can take down and bring back.

    ``down()`` closes the listening socket and every open connection (clients get "connection
    refused"); ``up()`` listens again on the same port. ``delay`` (seconds) holds each request
    before it is forwarded (a slow endpoint).
    """

    def __init__(self, upstream_url: str) -> None:
        import socket

        hostport = upstream_url.split("//", 1)[1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.delay = 0.0
        self.requests = 0
        self._socket_mod = socket
        self._lock = threading.Lock()
        self._conns: list[Any] = []
        self._listener: Any = None
        self._thread: threading.Thread | None = None
        self.up()

    def up(self) -> None:
        s = self._socket_mod
        lst = s.socket(s.AF_INET, s.SOCK_STREAM)
        lst.setsockopt(s.SOL_SOCKET, s.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port))
        lst.listen(64)
        self._listener = lst
        self._thread = threading.Thread(target=self._accept, args=(lst,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        lst, self._listener = self._listener, None
        if lst is not None:
            try:
                lst.shutdown(self._socket_mod.SHUT_RDWR)
            except OSError:
                pass
            lst.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _accept(self, lst: Any) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            try:
                upstream = self._socket_mod.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: Any, dst: Any, requests: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if requests:
                    self.requests += 1
                    if self.delay:
                        time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self) -> None:
        self.down()


# -- the world of one test ---------------------------------------------------------------------

BACKENDS = ["anvil", "pyevm"]


@dataclass
class World:
    tmp: Path
    chain: Chain
    deployment: Deployment
    hot: DevAccount
    cold: str
    alerts: AlertReceiver
    stack: contextlib.ExitStack
    agent: AgentProcess | None = None
    counterparty: Counterparty | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def start_agent(self, *, defects: str = "", urls: list[str] | None = None, env_extra: dict[str, str] | None = None) -> AgentProcess:
        env, control = agent_env(self.tmp, urls or [self.chain.rpc_url], self.deployment, self.hot, self.cold, self.alerts.url,
                                 defects=defects, extra=env_extra)
        self.agent = AgentProcess(env=env, log_path=self.tmp / "agent.log", control_url=control, token=env["AGENT_OPERATOR_TOKEN"])
        self.agent.start()
        self.stack.callback(self.agent.stop)
        return self.agent

    def restart_agent(self) -> AgentProcess:
        assert self.agent is not None
        self.agent.stop()
        self.agent.start()
        return self.agent

    def open_escrows(self, *, every: float = 0.5, ahead: int = 15) -> Counterparty:
        self.counterparty = Counterparty(self.chain, self.deployment, self.hot.address, every=every, ahead=ahead).start()
        self.stack.callback(self.counterparty.stop)
        return self.counterparty


def make_world(tmp: Path, backend: str, stack: contextlib.ExitStack, *, block_time: float | None = None) -> World:
    chain = start_chain(backend=backend, block_time=block_time)
    stack.callback(chain.stop)
    deployment = deploy_contracts(chain.w3, chain.accounts[0])
    hot = new_hot()
    fund(chain, deployment, hot.address)
    alerts = AlertReceiver()
    stack.callback(alerts.stop)
    return World(tmp=tmp, chain=chain, deployment=deployment, hot=hot, cold=new_key().address, alerts=alerts, stack=stack)
