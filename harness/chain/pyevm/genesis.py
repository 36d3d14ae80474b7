"""Settings and genesis of the embedded chain: anvil's development accounts, chain id, fork."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from harness.errors import ConfigError

__all__ = ["DEFAULT_MNEMONIC", "NodeConfig", "dev_keys"]

DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
_HD_PREFIX = "m/44'/60'/0'/0"


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """What the embedded node starts with. Validated once, here."""

    chain_id: int = 31337
    mnemonic: str = DEFAULT_MNEMONIC
    accounts: int = 10
    balance_wei: int = 10_000 * 10**18
    gas_limit: int = 30_000_000
    base_fee_wei: int = 10**9  # genesis base fee; later blocks follow EIP-1559
    automine: bool = True
    block_time: float | None = (
        None  # seconds between interval-mined blocks; None: no timer
    )
    suggested_tip_wei: int = 10**9  # what eth_maxPriorityFeePerGas answers

    def __post_init__(self) -> None:
        if not 0 < self.chain_id < 2**63:
            raise ConfigError(
                f"chain_id must be a positive 63-bit integer, not {self.chain_id}"
            )
        if not 1 <= self.accounts <= 1000:
            raise ConfigError(
                f"accounts must be between 1 and 1000, not {self.accounts}"
            )
        if self.balance_wei < 0:
            raise ConfigError(f"balance_wei must be >= 0, not {self.balance_wei}")
        if self.gas_limit < 21_000:
            raise ConfigError(
                f"gas_limit must be at least 21000 (one transfer), not {self.gas_limit}"
            )
        if self.base_fee_wei < 0:
            raise ConfigError(f"base_fee_wei must be >= 0, not {self.base_fee_wei}")
        if self.block_time is not None and self.block_time <= 0:
            raise ConfigError(
                f"block_time must be > 0 seconds or None (no interval mining), not {self.block_time}"
            )


@functools.cache
def dev_keys(mnemonic: str = DEFAULT_MNEMONIC, count: int = 10) -> tuple[bytes, ...]:
    """The private keys at m/44'/60'/0'/0/i, as ``Account.from_mnemonic`` derives them.

    The seed is stretched once and every path derived from it (``from_mnemonic`` would stretch it
    again per account: ten times slower, and chain start has to stay well under a second).
    Cached per process.
    """
    from eth_account.hdaccount import HDPath, seed_from_mnemonic

    seed = seed_from_mnemonic(mnemonic, "")
    return tuple(HDPath(f"{_HD_PREFIX}/{i}").derive(seed) for i in range(count))
