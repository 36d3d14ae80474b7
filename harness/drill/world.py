"""Builds the world of one drill and registers its undo as it goes.

Chain state is reset to the session's snapshot (contracts deployed), then: a fresh hot key funded
with ETH and DRILL tokens, a cold wallet address, the key file (0600), the contracts file, a state
dir, two proxies in front of the chain (primary and backup), the alert sink, the observers, the
workload, and the agent under its supervisor. Every piece is pushed on ``ctx.cleanup`` (an
ExitStack) right after it exists, so closing the stack tears down in reverse order whatever
happened: pass, failure, error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from eth_utils import to_checksum_address

from harness import accounts
from harness.chain.base import Chain
from harness.checks.budgets import Budget
from harness.contracts import Deployment, send_tx
from harness.drill.context import DrillContext
from harness.errors import HarnessError, RemoteAddressError
from harness.netutil import free_port
from harness.observe.alerts import AlertSink
from harness.observe.chainwatch import ChainWatcher
from harness.observe.health import HealthPoller
from harness.observe.timeline import Timeline
from harness.runtime.base import RestartPolicy
from harness.runtime.limits import AgentLimits
from harness.runtime.netbridge import BridgePlan
from harness.runtime.supervisor import AgentRuntime

if TYPE_CHECKING:
    from harness.runtime.docker import DockerRuntime
from harness.safety import check_loopback_url
from harness.workload import Workload, WorkloadSettings

__all__ = ["CONFIG_VARIABLES", "WorldSettings", "build_world", "agent_environment", "agent_bridge_plan", "config_sha256"]

ENDPOINT_ROLES = {"primary": "rpc-primary", "backup-1": "rpc-backup-1"}

#: AGENT_FEE_CAP_WEI unless the run sets it (contract 1.1): the most the agent pays per gas for its work
DEFAULT_FEE_CAP_WEI = 500 * 10**9

#: the contract's variables (section 1) that ``config_sha256`` covers, in the order hashed. Not the
#: operator token: /health answers anyone, and a hash over the token would let a guesser test tokens
#: offline, past the control API's rate limit. Not the key's content either (a rotation changes it).
CONFIG_VARIABLES = ("AGENT_RPC_URLS", "AGENT_CHAIN_ID", "AGENT_KEY_FILE", "AGENT_COLD_WALLET", "AGENT_CONTRACTS",
                    "AGENT_ALERT_URL", "AGENT_CONTROL_ADDR", "AGENT_STATE_DIR", "AGENT_PROFILE")


@dataclass(frozen=True, kw_only=True)
class WorldSettings:
    agent_cmd: Sequence[str]
    agent_env: Mapping[str, str] = field(default_factory=dict)
    budget: Budget = field(default_factory=Budget)
    hot_eth: int = 5 * 10**18
    hot_tokens: int = 100 * 10**18
    workload: WorkloadSettings = field(default_factory=WorkloadSettings)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    limits: AgentLimits = field(default_factory=AgentLimits)
    allow_remote: bool = False
    use_proxy: bool = True
    #: run the agent as a container of this image (harness.runtime.docker) instead of a process;
    #: ``agent_cmd`` then overrides the image's command when not empty
    agent_image: str | None = None
    #: labels of the agent's containers (the run id and the drill), under the Docker runtime
    agent_labels: Mapping[str, str] = field(default_factory=dict)
    #: the agent's network (either runtime): "isolated" (a loopback-only namespace bridged to
    #: the contract's endpoints, harness.runtime.netbridge), "host", or "auto" (isolated when possible)
    agent_network: str = "auto"
    #: False for a world without an agent under the harness (``drill world``: the user starts it by hand)
    start_agent: bool = True
    #: False leaves the counterparty idle: no escrow is opened unless someone opens it
    start_workload: bool = True


class SessionChain:
    """What the world needs from the session: a chain and the snapshot to return it to."""

    chain: Chain
    deployment: Deployment
    snapshot_id: str


def _account_for(address: str) -> accounts.DevAccount:
    for acct in accounts.dev_accounts():
        if acct.address.lower() == address.lower():
            return acct
    raise HarnessError(f"the contracts' owner {address} is not a development account; deploy them from dev account 0")


def _reset_chain(session: Any) -> None:
    """Return the chain to the session snapshot and take a new one (a revert consumes it)."""
    chain: Chain = session.chain
    chain.set_interval_mining(0)
    chain.set_automine(True)
    _drop_pool(chain)  # a previous drill's leftovers would be mined into this one after the revert
    before = session.snapshot_id
    if hasattr(session, "reset"):
        session.reset()  # harness.pytest_chain.DrillChain: revert, then a new snapshot
    else:
        if not chain.revert(before):
            raise HarnessError(f"the chain refused to revert to snapshot {before!r}; the session chain is unusable")
        session.snapshot_id = chain.snapshot()
    chain.set_automine(True)


def _drop_pool(chain: Chain) -> None:
    content = chain.txpool_content()
    for section in ("pending", "queued"):
        for by_nonce in (content.get(section) or {}).values():
            for tx in by_nonce.values():
                chain.drop_transaction(tx["hash"])


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def agent_environment(ctx: DrillContext, extra: Mapping[str, str], *, inherit: bool = True) -> dict[str, str]:
    """The contract's environment (section 1) over the harness's own (unless not ``inherit``), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_")} if inherit else {}
    env.update(
        {
            "AGENT_RPC_URLS": ",".join(ctx.rpc_urls),
            "AGENT_CHAIN_ID": str(ctx.chain.chain_id),
            "AGENT_KEY_FILE": str(ctx.key_file),
            "AGENT_COLD_WALLET": ctx.cold_wallet,
            "AGENT_CONTRACTS": str(ctx.contracts_file),
            "AGENT_ALERT_URL": ctx.alert_url,
            "AGENT_CONTROL_ADDR": ctx.control_url.removeprefix("http://"),
            "AGENT_OPERATOR_TOKEN": ctx.operator_token,
            "AGENT_STATE_DIR": str(ctx.state_dir),
            "AGENT_PROFILE": "drill",
            "AGENT_FEE_CAP_WEI": str(DEFAULT_FEE_CAP_WEI),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def config_sha256(env: Mapping[str, str]) -> str:
    """The configuration hash of docs/contract.md, section 4, over the environment ``env`` the agent gets.

    SHA-256, as 64 lowercase hex digits, of: one line ``NAME=value\\n`` (UTF-8) per variable of
    ``CONFIG_VARIABLES`` in that order (an unset one as ``NAME=\\n``), then the bytes of the file
    ``AGENT_CONTRACTS`` names, as they are on disk.
    """
    digest = hashlib.sha256()
    for name in CONFIG_VARIABLES:
        digest.update(f"{name}={env.get(name, '')}\n".encode())
    path = env.get("AGENT_CONTRACTS")
    if not path:
        raise HarnessError("config_sha256: the environment has no AGENT_CONTRACTS, so the contracts file cannot be hashed")
    digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def agent_bridge_plan(ctx: DrillContext) -> BridgePlan | None:
    """What an isolated agent reaches: its RPC URLs and the alert sink; it serves its control API.

    The chain's own port and the proxies' control API are traps: a connection to either is recorded
    as a contract violation (unless the drill gave the agent the chain directly, without proxies).
    None when an endpoint is off the machine's 127.0.0.1 (--allow-remote): the bridge cannot carry it.
    """
    def port(url: str) -> int:
        parsed = urlsplit(url)
        return parsed.port or (443 if parsed.scheme == "https" else 80)

    urls = [*ctx.rpc_urls, ctx.alert_url, ctx.control_url]
    if any(urlsplit(u).hostname not in ("127.0.0.1", "localhost") for u in urls):
        return None
    outbound = [port(u) for u in ctx.rpc_urls] + [port(ctx.alert_url)]
    traps = {port(ctx.chain.rpc_url): "the chain's own port"}
    if ctx.proxy_api_url:
        traps[port(ctx.proxy_api_url)] = "the fault proxies' control API"
    return BridgePlan(outbound=tuple(outbound), inbound=(port(ctx.control_url),),
                      traps={p: what for p, what in traps.items() if p not in outbound})


def _start_proxies(ctx: DrillContext, chain: Chain) -> None:
    """Two proxies in front of the chain; without a proxy package the agent gets direct URLs."""
    upstream = chain.rpc_url.removeprefix("http://").split("/")[0]
    try:
        from harness.proxy.control import ProxyControl  # type: ignore[import-not-found]
        from harness.proxy.embedded import EmbeddedProxy  # type: ignore[import-not-found]
    except ImportError:
        # TODO(lead): harness.proxy is not importable yet, so this drill runs with direct URLs and
        # network faults cannot act. Remove this fallback once harness/proxy lands.
        ctx.timeline.record("harness.warning", "world", warning="no fault proxy available; the agent talks to the chain directly")
        ctx.endpoint_urls = {role: chain.rpc_url for role in ENDPOINT_ROLES}
        ctx.endpoints = dict(ENDPOINT_ROLES)
        return
    api_url = os.environ.get("TOXIPROXY_URL")
    if api_url:
        try:
            check_loopback_url(api_url, what="TOXIPROXY_URL")
        except RemoteAddressError as exc:
            raise RemoteAddressError(f"TOXIPROXY_URL must be on loopback, even with --allow-remote: {api_url} "
                                     "(start a local proxy with `drill proxy`, or unset TOXIPROXY_URL to use the embedded one)") from exc
        control = ProxyControl(api_url)
        ctx.cleanup.callback(_quiet(control.delete_all))  # a shared server: leave it empty
    else:
        proxy = EmbeddedProxy(port=0)
        api_url = proxy.start()
        ctx.cleanup.callback(proxy.stop)
        control = ProxyControl(api_url)
    ctx.proxies = control
    ctx.proxy_api_url = api_url.rstrip("/")
    for role, name in ENDPOINT_ROLES.items():
        # A port below the kernel's ephemeral range (free_port): an outage closes the listener,
        # and a port of that range could meanwhile become some outgoing connection's local port,
        # so the proxy could not listen there again when the fault heals.
        endpoint = control.create(name, upstream=upstream, listen=f"127.0.0.1:{free_port()}")
        ctx.endpoints[role] = name
        ctx.endpoint_urls[role] = endpoint.url


def _quiet(fn: Any, *args: Any) -> Any:
    def run() -> None:
        with contextlib.suppress(Exception):
            fn(*args)

    return run


def build_world(session: Any, settings: WorldSettings, run_dir: Path, timeline: Timeline | None = None) -> DrillContext:
    """Build one drill's world (see the module docstring). The caller closes ``ctx.cleanup``."""
    timeline = timeline or Timeline()
    chain: Chain = session.chain
    check_loopback_url(chain.rpc_url, what="chain RPC URL", allow_remote=settings.allow_remote)
    deployment: Deployment = session.deployment
    _reset_chain(session)
    owner = _account_for(deployment.owner)
    counterparty = next(a for a in accounts.dev_accounts() if a.address != owner.address)
    hot = accounts.new_key()
    cold = accounts.new_key().address  # its key is dropped: nobody should spend from it in a drill
    run_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir = run_dir / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    key_file = secrets_dir / "hot.key"
    _write_secret(key_file, hot.key)
    contracts_file = run_dir / "contracts.json"
    import json

    contracts_file.write_text(json.dumps(deployment.to_json()))
    state_dir = run_dir / "state"
    state_dir.mkdir(exist_ok=True)
    ctx = DrillContext(
        timeline=timeline, chain=chain, deployment=deployment, hot_wallet=hot, cold_wallet=cold, owner=owner,
        counterparty=counterparty, run_dir=run_dir, state_dir=state_dir, key_file=key_file,
        contracts_file=contracts_file, control_url=f"http://127.0.0.1:{free_port()}",
        operator_token=secrets.token_hex(16), budget_scale=settings.budget.scale, budget=settings.budget,
    )
    ctx.agent_addresses.add(hot.address)
    ctx.secrets.append(hot.key)
    try:
        _populate(ctx, session, settings, owner, counterparty)
    except BaseException:
        ctx.cleanup.close()
        raise
    return ctx


def _agent_runtime(ctx: DrillContext, settings: WorldSettings) -> AgentRuntime | DockerRuntime:
    """The agent's runtime, not started: a container of ``agent_image`` or a process of ``agent_cmd``."""
    watch = [k.lower().removeprefix("0x") for k in ctx.secrets]
    if settings.agent_image:
        from harness.runtime.docker import DockerRuntime

        # A container gets the contract's variables and the extra ones, not the harness's own
        # environment (its PATH, HOME, virtualenv mean nothing inside the image).
        ctx.agent_env = agent_environment(ctx, settings.agent_env, inherit=False)
        return DockerRuntime(settings.agent_image, command=settings.agent_cmd, env=ctx.agent_env,
                             timeline=ctx.timeline, output_path=ctx.run_dir / "agent-output.log",
                             policy=settings.restart, limits=settings.limits, watch=watch,
                             read_only=[ctx.key_file.parent, ctx.contracts_file], read_write=[ctx.state_dir],
                             labels=settings.agent_labels, network=settings.agent_network,
                             bridge=agent_bridge_plan(ctx))
    ctx.agent_env = agent_environment(ctx, settings.agent_env)
    return AgentRuntime(settings.agent_cmd, env=ctx.agent_env, timeline=ctx.timeline,
                        output_path=ctx.run_dir / "agent-output.log", policy=settings.restart,
                        limits=settings.limits, watch=watch, network=settings.agent_network,
                        bridge=agent_bridge_plan(ctx))


def _populate(ctx: DrillContext, session: Any, settings: WorldSettings, owner: accounts.DevAccount,
              counterparty: accounts.DevAccount) -> None:
    chain, deployment, timeline = ctx.chain, ctx.deployment, ctx.timeline
    w3 = chain.w3
    token = deployment.token_contract(w3)
    send_tx(w3, counterparty, {"to": ctx.hot_address, "value": settings.hot_eth, "gas": 21_000})
    for to, amount in ((ctx.hot_address, settings.hot_tokens), (counterparty.address, 10_000 * 10**18)):
        send_tx(w3, owner, token.functions.mint(to, amount).build_transaction({"from": owner.address, "gas": 120_000}))
    timeline.record("world.funded", "world", hot=ctx.hot_address, eth=settings.hot_eth, tokens=settings.hot_tokens, cold=ctx.cold_wallet)

    _start_proxies(ctx, chain)

    sink = AlertSink(timeline)
    ctx.alert_url = sink.start()
    ctx.alerts = sink
    ctx.cleanup.callback(sink.stop)

    watcher = ChainWatcher(
        chain, deployment, timeline,
        agent_addresses=lambda: set(ctx.agent_addresses),
        watched_addresses=lambda: {ctx.cold_wallet, *ctx.attacker_addresses},
    )
    watcher.start()
    ctx.watcher = watcher
    ctx.cleanup.callback(watcher.stop)

    workload = Workload(chain, deployment, timeline, counterparty=counterparty, owner=owner,
                        agent_address=ctx.hot_address, settings=settings.workload)
    ctx.workload = workload

    def on_alert(event: Mapping[str, Any]) -> None:
        new = (event.get("details") or {}).get("new_address")
        if isinstance(new, str) and len(new) == 42 and new.startswith("0x"):
            try:
                addr = to_checksum_address(new)
            except ValueError:
                return
            if addr not in ctx.agent_addresses:
                ctx.agent_addresses.add(addr)
                timeline.record("agent.new_address", "world", address=addr, incident_id=event.get("incident_id"))
                workload.retarget(addr)

    sink.add_listener(on_alert)

    if settings.start_agent:
        ctx.agent = _agent_runtime(ctx, settings)
        ctx.agent.start()
        ctx.cleanup.callback(ctx.agent.stop)
    else:  # drill world: the environment is printed for an agent started by hand
        ctx.agent_env = agent_environment(ctx, settings.agent_env, inherit=False)
    ctx.config_sha256 = config_sha256(ctx.agent_env)  # of what the harness wrote, before any fault

    if settings.start_workload:
        workload.start()
        ctx.cleanup.callback(workload.stop)

    health = HealthPoller(ctx.control_url, timeline)
    health.start()
    ctx.health = health
    ctx.cleanup.callback(health.stop)
    timeline.record("world.ready", "world", rpc_urls=ctx.rpc_urls, control_url=ctx.control_url, alert_url=ctx.alert_url)
