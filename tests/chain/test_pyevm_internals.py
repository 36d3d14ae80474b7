"""Pieces of the pyevm node checked against py-evm and eth-account themselves."""

from __future__ import annotations

import pytest
from eth.vm.forks import PragueVM
from eth_account import Account

from harness.chain.pyevm import DEFAULT_MNEMONIC, NodeConfig, PyEvmNode, dev_keys
from harness.chain.pyevm.txpool import PoolTx, replacement_allowed
from harness.errors import ConfigError


def test_next_header_equals_what_py_evm_derives() -> None:
    node = PyEvmNode()
    node.mine(3)
    ours = node._next_header(node._peek_timestamp())
    theirs = PragueVM.create_header_from_parent(
        node._head,
        timestamp=ours.timestamp,
        gas_limit=ours.gas_limit,
        coinbase=ours.coinbase,
        mix_hash=ours.mix_hash,
        state_root=ours.state_root,
    )
    assert ours == theirs
    node.set_next_base_fee(123)
    overridden = node._next_header(ours.timestamp)
    assert overridden.base_fee_per_gas == 123
    assert (
        overridden.copy(
            base_fee_per_gas=theirs.base_fee_per_gas, mix_hash=theirs.mix_hash
        )
        == theirs
    )


def test_dev_keys_are_the_ones_account_from_mnemonic_derives() -> None:
    Account.enable_unaudited_hdwallet_features()
    for i, key in enumerate(dev_keys()):
        expected = Account.from_mnemonic(
            DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}"
        )
        assert key == bytes(expected.key)


def _ptx(fee: int, tip: int) -> PoolTx:
    return PoolTx(
        tx=None,
        hash=b"",
        sender=b"",
        nonce=0,
        fee_cap=fee,
        tip_cap=tip,
        gas=21_000,
        seq=0,
    )


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        ((100, 10), (110, 11), True),
        ((100, 10), (110, 10), False),
        ((100, 10), (109, 20), False),
        ((100, 0), (110, 0), False),  # both must be strictly higher
        ((100, 0), (110, 1), True),
        (
            (7, 7),
            (8, 8),
            True,
        ),  # 7 * 110 // 100 == 7, so 8 is enough (geth's integer rule)
    ],
)
def test_replacement_rule(old: tuple[int, int], new: tuple[int, int], ok: bool) -> None:
    assert replacement_allowed(_ptx(*old), _ptx(*new)) is ok


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chain_id": 0},
        {"accounts": 0},
        {"gas_limit": 20_000},
        {"block_time": 0},
        {"base_fee_wei": -1},
    ],
)
def test_bad_node_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        NodeConfig(**kwargs)  # type: ignore[arg-type]
