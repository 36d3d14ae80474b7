"""The drill contracts: compiled artifacts and their deployment on a drill chain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.contract import Contract

from harness.accounts import DevAccount
from harness.errors import HarnessError

__all__ = ["Artifact", "artifact", "artifacts_dir", "Deployment", "deploy_contracts", "send_tx", "DEFAULT_FEE"]

#: token units the escrow pulls per proof (1 DRILL)
DEFAULT_FEE = 10**18


def artifacts_dir() -> Path:
    """Where the compiled artifacts live (harness/data/contracts, a link to fixtures/contracts/build)."""
    return Path(__file__).resolve().parent / "data" / "contracts"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@lru_cache(maxsize=None)
def artifact(name: str) -> Artifact:
    path = artifacts_dir() / f"{name}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise HarnessError(
            f"contract artifact {path} is missing; rebuild it with `node scripts/build_contracts.mjs`"
        ) from exc
    return Artifact(name=name, abi=raw["abi"], bytecode=raw["bytecode"], deployed_bytecode=raw["deployedBytecode"])


def harness_fees(base_fee: int) -> dict[str, int]:
    """Fees for the harness's own transactions (the counterparty's escrows, a fault's switch): a cap far
    above any base fee a drill sets, so that what the harness does is never the transaction a gas spike
    strands (only base fee + tip is paid, so the cap costs nothing). The tip is the agents' usual
    minimum: a higher one would set the market tip and make an agent's too-small fee bump look large."""
    return {"maxFeePerGas": 4 * base_fee + 5000 * 10**9, "maxPriorityFeePerGas": 10**9}


def send_tx(w3: Web3, sender: DevAccount, tx: Mapping[str, Any], *, timeout: float = 30.0) -> Any:
    """Sign ``tx`` with ``sender``'s key, send it raw, and wait for its receipt (raises if it reverted)."""
    tx = dict(tx)
    tx.setdefault("from", sender.address)
    tx.setdefault("chainId", w3.eth.chain_id)
    tx.setdefault("nonce", w3.eth.get_transaction_count(sender.address, "pending"))
    if "gasPrice" not in tx and "maxFeePerGas" not in tx:
        base = w3.eth.get_block("pending")["baseFeePerGas"]
        tx["maxPriorityFeePerGas"] = 10**9
        tx["maxFeePerGas"] = 2 * base + 10**9
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2) + 10_000
    signed = Account.sign_transaction(tx, sender.key)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.05)
    if receipt["status"] != 1:
        raise HarnessError(f"transaction {tx_hash.to_0x_hex()} reverted: {tx}")
    return receipt


@dataclass(frozen=True)
class Deployment:
    """Addresses of the drill contracts and their owner (the harness acting as counterparty)."""

    token: str
    escrow: str
    owner: str
    fee: int

    def token_contract(self, w3: Web3) -> Contract:
        return w3.eth.contract(address=self.token, abi=artifact("DrillToken").abi)

    def escrow_contract(self, w3: Web3) -> Contract:
        return w3.eth.contract(address=self.escrow, abi=artifact("DrillEscrow").abi)

    def to_json(self) -> dict[str, str]:
        """The AGENT_CONTRACTS file's content."""
        return {"token": self.token, "escrow": self.escrow}


def _deploy(w3: Web3, owner: DevAccount, name: str, *args: Any) -> str:
    art = artifact(name)
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx = factory.constructor(*args).build_transaction({"from": owner.address, "nonce": w3.eth.get_transaction_count(owner.address, "pending")})
    receipt = send_tx(w3, owner, tx)
    return receipt["contractAddress"]


def deploy_contracts(w3: Web3, owner: DevAccount, *, fee: int = DEFAULT_FEE) -> Deployment:
    """Deploy DrillToken and DrillEscrow (fee in token units) from ``owner``."""
    token = _deploy(w3, owner, "DrillToken")
    escrow = _deploy(w3, owner, "DrillEscrow", token, fee)
    return Deployment(token=token, escrow=escrow, owner=owner.address, fee=fee)
