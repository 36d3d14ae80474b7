"""A deliberately small agent, written only from docs/contract.md, to show that the harness can
drill an agent it knows nothing about.

It proves the escrows assigned to it, serves /health and the operator API (bearer token), reports
a process_crash after a restart that followed an unclean exit, and a latency_degraded (SEV-3) while
its RPC answers slower than 300 ms, resolved once it is fast again. It does nothing else: no
failover, no key rotation, no fee bumping, and it never escalates an incident (contract 1.1), which
the drills aimed at those duties must catch. A blip of its RPC is only retried (no incident).

Run: AGENT_* environment as in the contract, then `python agent.py`.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from eth_account import Account
from web3 import Web3

ESCROW_ABI = [
    {"type": "function", "name": "submitProof", "stateMutability": "nonpayable", "outputs": [],
     "inputs": [{"name": "id", "type": "uint256"}, {"name": "proof", "type": "bytes32"}]},
    {"type": "function", "name": "fee", "stateMutability": "view", "inputs": [], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "escrows", "stateMutability": "view", "inputs": [{"name": "id", "type": "uint256"}],
     "outputs": [{"name": "agent", "type": "address"}, {"name": "deadline", "type": "uint64"},
                 {"name": "amount", "type": "uint256"}, {"name": "state", "type": "uint8"}]},
]
TOKEN_ABI = [
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}], "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "allowance", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
]
OPENED = "0x" + Web3.keccak(text="EscrowOpened(uint256,address,uint64,uint256)").hex().removeprefix("0x")

env = os.environ
rpc_url = env["AGENT_RPC_URLS"].split(",")[0]  # the primary only: this agent never fails over
w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 2}))
account = Account.from_key(Path(env["AGENT_KEY_FILE"]).read_text().strip())
me = account.address
contracts = json.loads(Path(env["AGENT_CONTRACTS"]).read_text())
escrow = w3.eth.contract(address=Web3.to_checksum_address(contracts["escrow"]), abi=ESCROW_ABI)
token = w3.eth.contract(address=Web3.to_checksum_address(contracts["token"]), abi=TOKEN_ABI)
state_dir = Path(env["AGENT_STATE_DIR"])
marker = state_dir / "running"
token_expected = env["AGENT_OPERATOR_TOKEN"]
chain_id = int(env["AGENT_CHAIN_ID"])

status = {"mode": "normal", "last_block": 0, "rpc_ok": False}
lock = threading.Lock()


def new_incident_id() -> str:
    counter = state_dir / "incidents"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return f"INC-{datetime.date.today().isoformat()}-{n:03d}"


def alert(incident_id: str, kind: str, severity: str, status_: str, summary: str) -> None:
    body = {"incident_id": incident_id, "kind": kind, "severity": severity, "status": status_,
            "summary": summary, "ts": time.time(), "actions": [], "details": {}}
    for _ in range(5):
        try:
            if requests.post(env["AGENT_ALERT_URL"], json=body, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path != "/health":
            return self._send(404, {"error": "not found"})
        with lock:
            st = "halted" if status["mode"] == "halted" else "ok" if status["rpc_ok"] else "degraded"
            self._send(200, {"status": st, "mode": status["mode"], "address": me, "last_block": status["last_block"],
                             "pending_txs": 0, "rpc": rpc_url, "ts": time.time()})

    def do_POST(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {token_expected}":
            return self._send(401, {"error": "unauthorized"})
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(400, {"error": "bad json"})
        if self.path == "/operator/incident":
            inc = new_incident_id()
            threading.Thread(target=alert, args=(inc, "manual", body.get("severity", "SEV-3"), "detected",
                                                 str(body.get("summary", "manual report"))), daemon=True).start()
            return self._send(201, {"incident_id": inc})
        if self.path in ("/operator/halt", "/operator/resume"):
            with lock:
                status["mode"] = "halted" if self.path.endswith("halt") else "normal"
            return self._send(200, {"mode": status["mode"]})
        return self._send(404, {"error": "not found"})


def serve() -> None:
    host, port = env["AGENT_CONTROL_ADDR"].rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Control)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def send(fn) -> str:
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    tx = fn.build_transaction({"from": me, "chainId": chain_id, "nonce": w3.eth.get_transaction_count(me, "pending"),
                               "gas": 200_000, "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9})
    return w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction).hex()


def main() -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    crash_incident = None
    if marker.exists():  # the last run did not shut down cleanly
        crash_incident = new_incident_id()
        alert(crash_incident, "process_crash", "SEV-2", "detected", "restarted after an unclean exit")
    marker.write_text(str(os.getpid()))

    def on_term(*_: object) -> None:
        marker.unlink(missing_ok=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    serve()
    in_flight: dict[int, float] = {}
    approved = False
    slow_rounds = 0
    slow_incident = None
    while True:
        try:
            with lock:
                mode = status["mode"]
            asked = time.monotonic()
            head = w3.eth.block_number
            slow_rounds = slow_rounds + 1 if time.monotonic() - asked > 0.3 else 0
            if slow_rounds >= 2 and slow_incident is None:
                slow_incident = new_incident_id()
                alert(slow_incident, "latency_degraded", "SEV-3", "detected", "RPC answers slower than 300 ms")
            elif slow_rounds == 0 and slow_incident is not None:
                alert(slow_incident, "latency_degraded", "SEV-3", "resolved", "RPC fast again")
                slow_incident = None
            with lock:
                status["last_block"], status["rpc_ok"] = head, True
            if mode == "halted":
                time.sleep(0.2)
                continue
            if not approved:
                if token.functions.allowance(me, escrow.address).call() < 10**24:
                    send(token.functions.approve(escrow.address, 2**256 - 1))
                    time.sleep(0.3)
                    continue
                approved = True
            logs = w3.eth.get_logs({"address": escrow.address, "fromBlock": max(0, head - 200), "toBlock": head,
                                    "topics": [OPENED, None, "0x" + "0" * 24 + me[2:].lower()]})
            now_ts = w3.eth.get_block("latest")["timestamp"]
            todo = []
            for log in logs:
                esc_id = int(log["topics"][1].hex(), 16)
                if in_flight.get(esc_id, 0) > time.time():
                    continue
                agent, deadline, _amount, state = escrow.functions.escrows(esc_id).call()
                if state == 1 and agent == me and deadline >= now_ts:
                    todo.append((deadline, esc_id))
            # One proof per round, the most urgent first: a backlog is worked off gradually.
            for _deadline, esc_id in sorted(todo)[:1]:
                proof = Web3.solidity_keccak(["uint256", "address"], [esc_id, me])
                send(escrow.functions.submitProof(esc_id, proof))
                in_flight[esc_id] = time.time() + 10
                if crash_incident:
                    alert(crash_incident, "process_crash", "SEV-2", "resolved", "proving again after the restart")
                    crash_incident = None
        except Exception as exc:  # keep running; report the problem on stdout
            with lock:
                status["rpc_ok"] = False
            print(f"minimal agent: {type(exc).__name__}: {exc}", flush=True)
        time.sleep(0.3)


if __name__ == "__main__":
    main()
