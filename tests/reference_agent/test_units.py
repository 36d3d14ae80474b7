"""Units of the reference agent: fee maths, the journal, config checks, failover, auth, incidents.

Where a unit talks to something (an RPC node, an HTTP client, an alert receiver) it talks to a
real one over loopback sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from ra_world import REPO, AlertReceiver, Forwarder
from reference_agent.config import KNOWN_DEFECTS
from reference_agent.control import ControlServer, RateLimiter
from reference_agent.fees import (
    BUMP,
    MIN_REPLACEMENT,
    SMALL_BUMP,
    Fees,
    bump,
    is_valid_replacement,
    market_fees,
)
from reference_agent.incidents import IncidentManager
from reference_agent.journal import Attempt, EscrowInfo, InFlight, Journal
from reference_agent.rpc import NoEndpointError, RpcError, RpcPool
from reference_agent.store import StateUnreadable
from reference_agent.wallet import Wallet

from harness.accounts import new_key
from harness.chain.base import running_chain
from harness.netutil import free_port

GWEI = 10**9


# -- fees --------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_fee,tip", [(1, 1), (7, 3), (30 * GWEI, 1 * GWEI), (10**12 + 1, 10**9 + 7), (3, 0)])
def test_bump_raises_fee_cap_and_tip_by_at_least_ten_percent(max_fee: int, tip: int) -> None:
    old = Fees(max_fee, tip)
    new = bump(old, Fees(0, 0))
    assert is_valid_replacement(old, new)
    assert new.max_fee * 10 >= old.max_fee * 11 and new.tip * 10 >= old.tip * 11
    assert new.max_fee == -(-max_fee * 9 // 8)  # exactly +12.5%, rounded up


def test_bump_follows_the_market_when_it_is_higher() -> None:
    new = bump(Fees(10 * GWEI, GWEI), Fees(100 * GWEI, 5 * GWEI))
    assert new == Fees(100 * GWEI, 5 * GWEI)


def test_small_bump_defect_is_under_the_replacement_rule() -> None:
    old = Fees(100 * GWEI, 2 * GWEI)
    new = bump(old, Fees(0, 0), factor=SMALL_BUMP)
    assert not is_valid_replacement(old, new)
    assert new.max_fee == 105 * GWEI
    assert BUMP >= MIN_REPLACEMENT > SMALL_BUMP


def test_bump_respects_the_cap() -> None:
    new = bump(Fees(90 * GWEI, 10 * GWEI), Fees(0, 0), cap=95 * GWEI)
    assert new.max_fee == 95 * GWEI and new.tip <= new.max_fee
    assert not is_valid_replacement(Fees(90 * GWEI, 10 * GWEI), new)


def test_market_fees_from_a_real_fee_history() -> None:
    with running_chain(backend="anvil") as chain:
        hist = chain.rpc("eth_feeHistory", "0x5", "latest", [50])
        f = market_fees(hist, min_tip=GWEI, cap=500 * GWEI)
        base_next = int(hist["baseFeePerGas"][-1], 16)
        assert f.tip >= GWEI
        assert f.max_fee == 2 * base_next + f.tip
        capped = market_fees(hist, min_tip=GWEI, cap=base_next)
        assert capped.max_fee == base_next and capped.tip <= capped.max_fee


def test_fraction_constants() -> None:
    assert BUMP == Fraction(9, 8) and SMALL_BUMP == Fraction(21, 20)


# -- journal -----------------------------------------------------------------------------------
def _item(nonce: int) -> InFlight:
    return InFlight(nonce=nonce, intent={"kind": "proof", "escrow": 7, "deadline": 99, "amount": 5}, to="0x" + "11" * 20,
                    data="0xabcd", value=0, gas=200_000,
                    attempts=[Attempt(hash="0x" + "22" * 32, raw="0xf8", max_fee=3 * GWEI, tip=GWEI, sent_at=1.5)])


def test_journal_round_trip(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.json")
    j.address = "0x" + "33" * 20
    j.cursor = 41
    j.add_escrow(EscrowInfo(7, 99, 5))
    j.add_escrow(EscrowInfo(8, 100, 6))
    j.mark_done(8)
    n = j.allocate()
    j.record(_item(n))
    back = Journal.load(tmp_path / "journal.json")
    assert back is not None
    assert (back.address, back.next_nonce, back.cursor) == (j.address, 1, 41)
    assert back.inflight[0] == j.inflight[0]
    assert back.escrows == {7: EscrowInfo(7, 99, 5)}
    assert back.is_done(8) and not back.is_done(7)
    assert back.proof_in_flight(7) is not None
    assert oct((tmp_path / "journal.json").stat().st_mode & 0o777) == oct(0o600)


def test_journal_release_gives_the_last_nonce_back(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.json")
    j.record(_item(j.allocate()))
    j.record(_item(j.allocate()))
    j.release(1)
    assert j.next_nonce == 1
    j.release(0)
    assert j.next_nonce == 0


def test_damaged_journal_is_reported_not_guessed(tmp_path: Path) -> None:
    p = tmp_path / "journal.json"
    p.write_bytes(os.urandom(64))
    with pytest.raises(StateUnreadable):
        Journal.load(p)
    p.write_text('{"address": "0x1"}')
    with pytest.raises(StateUnreadable):
        Journal.load(p)
    assert Journal.load(tmp_path / "none.json") is None


def test_volatile_journal_writes_nothing(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.json", persistent=False)
    j.record(_item(j.allocate()))
    assert not (tmp_path / "journal.json").exists()


_WRITER = """
import sys, time
sys.path.insert(0, {fixtures!r})
from reference_agent.journal import Journal, InFlight, Attempt
j = Journal(__import__("pathlib").Path({path!r}))
j.address = "0x" + "44" * 20
print("ready", flush=True)
while True:
    n = j.allocate()
    j.record(InFlight(nonce=n, intent={{"kind": "proof", "escrow": n, "pad": "x" * 2000}}, to=j.address, data="0x", value=0, gas=1,
                      attempts=[Attempt(hash="0x" + "55" * 32, raw="0x" + "66" * 500, max_fee=2, tip=1, sent_at=0.0)]))
"""


def test_journal_survives_sigkill_mid_write(tmp_path: Path) -> None:
    """Killed while writing as fast as it can, the journal is always whole: old or new, never torn."""
    path = tmp_path / "journal.json"
    for round_ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER.format(fixtures=str(REPO / "fixtures"), path=str(path))],
                                stdout=subprocess.PIPE, start_new_session=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
            time.sleep(0.2 + 0.07 * round_)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        j = Journal.load(path)
        assert j is not None and j.next_nonce >= 1
        assert sorted(j.inflight) == list(range(j.next_nonce)) or sorted(j.inflight) == list(range(j.next_nonce - 1))


# -- wallet ------------------------------------------------------------------------------------
def test_wallet_never_shows_its_key(tmp_path: Path) -> None:
    acct = new_key()
    w = Wallet(acct.key)
    assert acct.key[2:] not in repr(w) and acct.key[2:] not in str(w)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(w)
    bad = tmp_path / "bad.key"
    bad.write_text(acct.key[:-1] + "z")
    with pytest.raises(ValueError) as err:
        Wallet.from_file(bad)
    assert acct.key[2:20] not in str(err.value)
    rotated = Wallet.generate(tmp_path)
    assert (tmp_path / "rotated_key.json").stat().st_mode & 0o777 == 0o600
    assert Wallet.load_rotated(tmp_path).address == rotated.address  # type: ignore[union-attr]


# -- config ------------------------------------------------------------------------------------
def _run_agent_env(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO / "fixtures"), **env}
    return subprocess.run([sys.executable, "-m", "reference_agent"], env=full, capture_output=True, text=True, timeout=30, check=False)


def _valid_env(tmp_path: Path, key: str) -> dict[str, str]:
    kf = tmp_path / "k"
    kf.write_text(key)
    kf.chmod(0o600)
    cf = tmp_path / "c.json"
    cf.write_text(json.dumps({"token": "0x" + "11" * 20, "escrow": "0x" + "22" * 20}))
    return {
        "AGENT_RPC_URLS": "http://127.0.0.1:1", "AGENT_CHAIN_ID": "31337", "AGENT_KEY_FILE": str(kf),
        "AGENT_COLD_WALLET": "0x" + "33" * 20, "AGENT_CONTRACTS": str(cf), "AGENT_ALERT_URL": "http://127.0.0.1:2/",
        "AGENT_CONTROL_ADDR": "127.0.0.1:3", "AGENT_OPERATOR_TOKEN": "t", "AGENT_STATE_DIR": str(tmp_path / "s"),
        "AGENT_PROFILE": "drill",
    }


@pytest.mark.parametrize(
    "change,expect",
    [
        ({"AGENT_RPC_URLS": ""}, "AGENT_RPC_URLS is not set"),
        ({"AGENT_CHAIN_ID": "0x7a69"}, "AGENT_CHAIN_ID='0x7a69' is not a positive decimal integer"),
        ({"AGENT_COLD_WALLET": "0x1234"}, "AGENT_COLD_WALLET='0x1234' is not an address"),
        ({"AGENT_CONTROL_ADDR": "localhost"}, "AGENT_CONTROL_ADDR='localhost' is not HOST:PORT"),
        ({"AGENT_PROFILE": "fast"}, "AGENT_PROFILE='fast' is unknown"),
        ({"AGENT_DEFECTS": "no_failover,no_brakes"}, "unknown defect(s) no_brakes; known: " + ", ".join(KNOWN_DEFECTS)),
    ],
)
def test_bad_environment_is_one_line_and_exit_2(tmp_path: Path, change: dict[str, str], expect: str) -> None:
    key = new_key().key
    env = {**_valid_env(tmp_path, key), **change}
    res = _run_agent_env(env)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], res.stderr
    assert key[2:] not in res.stderr + res.stdout


def test_key_file_problems_never_echo_the_key(tmp_path: Path) -> None:
    key = new_key().key
    env = _valid_env(tmp_path, key)
    Path(env["AGENT_KEY_FILE"]).chmod(0o644)
    res = _run_agent_env(env)
    assert res.returncode == 2 and "chmod 600" in res.stderr
    Path(env["AGENT_KEY_FILE"]).write_text(key[:-2] + "zz")
    Path(env["AGENT_KEY_FILE"]).chmod(0o600)
    res = _run_agent_env(env)
    assert res.returncode == 2 and "does not hold a private key" in res.stderr
    assert key[2:-2] not in res.stderr + res.stdout


# -- failover policy ---------------------------------------------------------------------------
def _pool(urls: list[str], **kw: object) -> RpcPool:
    args: dict[str, object] = {"chain_id": 31337, "timeout": 1.0, "latency_threshold": 0.3, "failback_probes": 2, "stale_blocks": 3}
    args.update(kw)
    return RpcPool(tuple(urls), **args)  # type: ignore[arg-type]


def test_failover_to_backup_and_failback_to_primary() -> None:
    async def scenario(primary: Forwarder, backup: Forwarder) -> None:
        pool = _pool([primary.url, backup.url])
        await pool.start()
        try:
            assert int(await pool.call("eth_chainId"), 16) == 31337 and pool.active == 0
            primary.down()
            await pool.call("eth_blockNumber")  # answered by the backup
            assert pool.active == 1 and not pool.primary.healthy
            assert "failed" in pool.switches[-1].reason
            await pool.probe()
            assert pool.active == 1  # the primary is still down
            primary.up()
            await pool.probe()
            assert pool.active == 1  # one good probe is not enough
            await pool.probe()
            await pool.probe()
            assert pool.active == 0 and pool.switches[-1].reason == "primary healthy again"
            with pytest.raises(RpcError):  # the node's answer about the request: no failover
                await pool.call("eth_call", {"to": "0x" + "00" * 20, "data": "0xzz"}, "latest")
            assert pool.active == 0
        finally:
            await pool.close()

    with running_chain(backend="anvil") as chain:
        p, b = Forwarder(chain.rpc_url), Forwarder(chain.rpc_url)
        try:
            asyncio.run(scenario(p, b))
        finally:
            p.stop()
            b.stop()


def test_slow_primary_moves_traffic_and_no_failover_stays() -> None:
    async def scenario(primary: Forwarder, backup: Forwarder) -> None:
        pool = _pool([primary.url, backup.url])
        stuck = _pool([primary.url, backup.url], failover=False)
        await pool.start()
        await stuck.start()
        try:
            primary.delay = 0.4
            for _ in range(4):
                await pool.call("eth_blockNumber")
            assert pool.active == 1 and "latency" in pool.switches[-1].reason
            primary.down()
            with pytest.raises(NoEndpointError):
                await stuck.call("eth_blockNumber")
            assert stuck.active == 0 and backup.requests > 0
        finally:
            await pool.close()
            await stuck.close()

    with running_chain(backend="anvil") as chain:
        p, b = Forwarder(chain.rpc_url), Forwarder(chain.rpc_url)
        try:
            asyncio.run(scenario(p, b))
        finally:
            p.stop()
            b.stop()


def test_endpoint_on_the_wrong_chain_or_erroring_is_unhealthy() -> None:
    async def scenario(chain_url: str) -> None:
        async def wrong(request: web.Request) -> web.Response:
            body = await request.json()
            if body["method"] == "eth_chainId":
                return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": "0x1"})
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32000, "message": "internal error"}})

        app = web.Application()
        app.router.add_post("/", wrong)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        pool = _pool([f"http://127.0.0.1:{port}/", chain_url])
        await pool.start()
        try:
            await pool.call("eth_blockNumber")  # "internal error" counts against the endpoint
            assert pool.active == 1
            await pool.probe()
            assert not pool.primary.healthy and "chain id 1" in pool.primary.last_error
        finally:
            await pool.close()
            await runner.cleanup()

    with running_chain(backend="anvil") as chain:
        asyncio.run(scenario(chain.rpc_url))


# -- control API: auth and rate limiting ----------------------------------------------------------
class _Target:
    def __init__(self) -> None:
        self.halts = 0
        self.attacks: list[tuple[str, int]] = []

    def health(self) -> dict[str, object]:
        return {"status": "ok"}

    def operator_incident(self, summary: str, severity: str) -> str:
        return "INC-2026-01-01-001"

    def operator_halt(self) -> None:
        self.halts += 1

    def operator_resume(self) -> None:
        pass

    def auth_attack(self, source: str, failures: int) -> None:
        self.attacks.append((source, failures))


async def _post(session: aiohttp.ClientSession, url: str, token: str | None, source: str = "127.0.0.1") -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    conn = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=conn) as s, s.post(url, json={"summary": "x"}, headers=headers) as r:
        return r.status


def test_bad_tokens_get_401_then_the_source_is_blocked_with_429() -> None:
    async def scenario() -> None:
        target = _Target()
        port = free_port()
        limiter = RateLimiter(window=10, max_failures=5, block=1.5)
        server = ControlServer(target, token="right-token", host="127.0.0.1", port=port, limiter=limiter)
        await server.start()
        url = f"http://127.0.0.1:{port}/operator/halt"
        try:
            async with aiohttp.ClientSession() as s:
                codes = [await _post(s, url, "wrong", "127.0.0.2") for _ in range(4)] + [await _post(s, url, None, "127.0.0.2")]
                assert codes == [401, 401, 401, 401, 429]
                assert target.halts == 0 and target.attacks == [("127.0.0.2", 5)]  # the source and the failures that blocked it
                assert await _post(s, url, "right-token", "127.0.0.2") == 429  # blocked even with the token
                assert await _post(s, url, "right-token", "127.0.0.1") == 200  # another source is not
                assert target.halts == 1
                await asyncio.sleep(1.6)
                assert await _post(s, url, "right-token", "127.0.0.2") == 200  # the block expired
                assert target.halts == 2
                async with s.get(f"http://127.0.0.1:{port}/health") as r:
                    assert r.status == 200
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_no_rate_limit_defect_never_blocks() -> None:
    async def scenario() -> None:
        target = _Target()
        port = free_port()
        server = ControlServer(target, token="t", host="127.0.0.1", port=port,
                               limiter=RateLimiter(window=10, max_failures=3, block=60, enabled=False))
        await server.start()
        try:
            async with aiohttp.ClientSession() as s:
                codes = [await _post(s, f"http://127.0.0.1:{port}/operator/halt", "bad") for _ in range(6)]
                assert codes == [401] * 6
                assert await _post(s, f"http://127.0.0.1:{port}/operator/halt", "t") == 200
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_one_wrong_token_is_no_attack_but_the_blocks_first_failure_defect_blocks() -> None:
    """The sound limiter answers a single typo 401 and serves the right token after it; with
    max_failures=1 (the blocks_first_failure defect) the typo blocks its source at once."""
    async def scenario(max_failures: int) -> tuple[list[int], list[tuple[str, int]]]:
        target = _Target()
        port = free_port()
        server = ControlServer(target, token="t", host="127.0.0.1", port=port,
                               limiter=RateLimiter(window=10, max_failures=max_failures, block=60))
        await server.start()
        try:
            async with aiohttp.ClientSession() as s:
                url = f"http://127.0.0.1:{port}/operator/resume"
                return [await _post(s, url, "typo", "127.0.0.3"), await _post(s, url, "t", "127.0.0.3")], target.attacks
        finally:
            await server.stop()

    assert asyncio.run(scenario(5)) == ([401, 200], [])
    assert asyncio.run(scenario(1)) == ([429, 429], [("127.0.0.3", 1)])


def test_config_hash_is_the_harness_s_own(tmp_path: Path) -> None:
    """The agent's /health hash and the harness's, both written from docs/contract.md section 4, agree;
    the wrong_config_hash defect's (the file left out) does not, nor does one after the file changed."""
    from harness.drill.world import CONFIG_VARIABLES as HARNESS_VARIABLES
    from harness.drill.world import config_sha256 as harness_hash
    from reference_agent.config import CONFIG_VARIABLES, config_sha256

    contracts = tmp_path / "contracts.json"
    contracts.write_text('{"token": "0x1", "escrow": "0x2"}')
    env = {name: f"value of {name}" for name in CONFIG_VARIABLES} | {"AGENT_CONTRACTS": str(contracts),
                                                                     "AGENT_OPERATOR_TOKEN": "secret"}
    assert CONFIG_VARIABLES == HARNESS_VARIABLES
    assert "AGENT_OPERATOR_TOKEN" not in CONFIG_VARIABLES  # /health answers anyone: no hash over the token
    expected = harness_hash(env)
    assert config_sha256(env) == expected and len(expected) == 64
    assert config_sha256(env | {"AGENT_OPERATOR_TOKEN": "other"}) == expected
    assert config_sha256(env, files=False) != expected
    contracts.write_text('{"token": "0x1", "escrow": "0x3"}')
    assert config_sha256(env) != expected


def test_incident_route_validates_its_body() -> None:
    async def scenario() -> None:
        port = free_port()
        server = ControlServer(_Target(), token="t", host="127.0.0.1", port=port, limiter=RateLimiter(window=10, max_failures=5, block=1))
        await server.start()
        try:
            async with aiohttp.ClientSession(headers={"Authorization": "Bearer t"}) as s:
                url = f"http://127.0.0.1:{port}/operator/incident"
                async with s.post(url, json={"summary": "disk full", "severity": "SEV-2"}) as r:
                    assert r.status == 201 and (await r.json())["incident_id"].startswith("INC-")
                async with s.post(url, json={"summary": "x", "severity": "SEV-9"}) as r:
                    assert r.status == 400 and "SEV-1" in (await r.json())["error"]
                async with s.post(url, data=b"not json") as r:
                    assert r.status == 400
        finally:
            await server.stop()

    asyncio.run(scenario())


# -- incidents --------------------------------------------------------------------------------------
def test_incident_lifecycle_is_delivered_in_order_despite_receiver_failures(tmp_path: Path) -> None:
    rx = AlertReceiver()
    rx.fail_next = 3

    async def scenario() -> None:
        im = IncidentManager(tmp_path, rx.url, backoff=(0.05, 0.2), timeout=2, fresh=True)
        stop = asyncio.Event()
        sender = asyncio.create_task(im.run_sender(stop))
        inc = im.open("rpc_failure", "SEV-3", "primary down", actions=["switched to backup"], details={"endpoint": {"failed": "a"}},
                      impact="slower", next_steps="probe")
        assert im.open("rpc_failure", "SEV-2", "all down") is inc  # same incident, severity raised
        im.update(inc, status="contained")
        im.resolve(inc, "primary back")
        deadline = time.monotonic() + 10
        while im.outbox and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await sender

    try:
        asyncio.run(scenario())
        seen = [(e["severity"], e["status"]) for e in rx.events]
        assert seen == [("SEV-3", "detected"), ("SEV-2", "detected"), ("SEV-2", "contained"), ("SEV-2", "resolved")]
        assert rx.requests == 7  # three refused, then four delivered
        ids = {e["incident_id"] for e in rx.events}
        assert ids == {f"INC-{time.strftime('%Y-%m-%d', time.gmtime())}-001"}
        last = rx.events[-1]
        assert last["actions"] == ["switched to backup"] and last["kind"] == "rpc_failure"
        assert {"started", "impact", "next_steps", "endpoint"} <= set(last["details"])
        pm = (tmp_path / "postmortems" / f"{last['incident_id']}.md").read_text()
        assert "## Timeline" in pm and "SEV-2" in pm and "## Action items" in pm
    finally:
        rx.stop()


def test_open_incidents_and_undelivered_events_survive_a_restart(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    im = IncidentManager(tmp_path, dead, backoff=(0.05, 0.1), timeout=1, fresh=True)
    inc = im.open("process_crash", "SEV-2", "crashed")
    assert len(im.outbox) == 1
    again = IncidentManager(tmp_path, dead, backoff=(0.05, 0.1), timeout=1, fresh=False)
    assert again.get("process_crash").id == inc.id  # type: ignore[union-attr]
    assert len(again.outbox) == 1
    second = again.open("reorg", "SEV-3", "reorg")
    assert second.id.endswith("-002")
    lost = tmp_path / "lost"
    lost.mkdir()
    (lost / "incidents.json").write_bytes(b"\x00garbage")
    torn = IncidentManager(lost, dead, backoff=(0.05, 0.1), timeout=1, fresh=False)
    assert torn.load_problem and torn.seq >= 100  # far from the numbers of a previous life


# -- crash records ------------------------------------------------------------------------------
def _age_current_life(state: Path, seconds: float) -> None:
    """Pretend the running life began ``seconds`` ago and was alive until now."""
    from reference_agent.lifecycle import heartbeat

    run = json.loads((state / "run.json").read_text())
    run["started"] -= seconds
    (state / "run.json").write_text(json.dumps(run))
    heartbeat(state)


def test_crash_loop_counts_short_lives_after_a_crash(tmp_path: Path) -> None:
    from reference_agent.lifecycle import mark_clean, record_start

    first = record_start(tmp_path, window=60, short_life=3)
    assert first.first_start and not first.previous_unclean
    _age_current_life(tmp_path, 10)  # a long life, then killed
    seen = [record_start(tmp_path, window=60, short_life=3).crashes_in_window for _ in range(3)]  # each killed at once
    assert seen == [0, 2, 3]
    mark_clean(tmp_path, time.time())
    after_clean = record_start(tmp_path, window=60, short_life=3)
    assert not after_clean.previous_unclean and after_clean.crashes_in_window == 0


def test_long_lives_killed_are_crashes_not_a_loop(tmp_path: Path) -> None:
    from reference_agent.lifecycle import record_start

    record_start(tmp_path, window=60, short_life=3)
    for _ in range(3):
        _age_current_life(tmp_path, 10)
        info = record_start(tmp_path, window=60, short_life=3)
        assert info.previous_unclean and info.crashes_in_window == 0
