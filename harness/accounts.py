"""Deterministic development accounts, the same on every backend.

Both chains fund the accounts of anvil's well-known development mnemonic, so addresses and keys do
not depend on which backend a drill runs on. These keys are public knowledge and hold value only on
a local chain. Keys the harness *generates* for a drill (the agent's hot wallet) come from
``new_key()`` and are registered with the secret scanner; neither kind is ever printed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import lru_cache

from eth_account import Account
from eth_account.signers.local import LocalAccount

__all__ = ["DEV_MNEMONIC", "DEV_BALANCE_WEI", "DevAccount", "dev_accounts", "new_key"]

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10
DEV_BALANCE_WEI = 10_000 * 10**18


@dataclass(frozen=True)
class DevAccount:
    """An address with its signing key. The key is kept out of repr() so it never lands in a log."""

    address: str
    key: str = field(repr=False)  # 0x + 64 hex

    @property
    def signer(self) -> LocalAccount:
        return Account.from_key(self.key)


@lru_cache(maxsize=1)
def dev_accounts() -> tuple[DevAccount, ...]:
    """The ten funded accounts (derivation m/44'/60'/0'/0/i of the development mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    out = []
    for i in range(DEV_ACCOUNT_COUNT):
        acct = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out.append(DevAccount(address=acct.address, key=acct.key.to_0x_hex()))
    return tuple(out)


def new_key() -> DevAccount:
    """A fresh random key pair (for the agent's hot wallet in a drill)."""
    acct = Account.from_key("0x" + secrets.token_hex(32))
    return DevAccount(address=acct.address, key=acct.key.to_0x_hex())
