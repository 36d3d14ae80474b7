"""The reference agent signs its transactions with eth-keys and rlp: the bytes are eth-account's.

The agent dropped eth-account to start faster (its import was most of the agent's start); these
checks hold its signer to the library it replaced, on generated transactions.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_agent.wallet import Wallet

KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"

txs = st.fixed_dictionaries({
    "type": st.just(2),
    "chainId": st.integers(min_value=1, max_value=2**32),
    "nonce": st.integers(min_value=0, max_value=2**40),
    "to": st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    "value": st.integers(min_value=0, max_value=2**100),
    "data": st.binary(max_size=100).map(lambda b: "0x" + b.hex()),
    "gas": st.integers(min_value=21_000, max_value=30_000_000),
    "maxFeePerGas": st.integers(min_value=0, max_value=2**80),
    "maxPriorityFeePerGas": st.integers(min_value=0, max_value=2**80),
})


@settings(max_examples=60, deadline=None)
@given(tx=txs, key=st.integers(min_value=1, max_value=2**255).map(lambda k: "0x" + k.to_bytes(32, "big").hex()))
def test_signed_bytes_and_hash_are_eth_accounts(tx: dict, key: str) -> None:
    ours = Wallet(key)
    theirs = Account.from_key(key)
    signed = theirs.sign_transaction({**tx, "to": to_checksum_address(tx["to"])})
    assert ours.address == theirs.address
    assert ours.sign(tx) == (signed.raw_transaction.to_0x_hex(), signed.hash.to_0x_hex())


def test_a_bad_key_is_a_value_error_that_does_not_quote_it(tmp_path) -> None:
    zero = "0x" + "00" * 32
    with pytest.raises(ValueError) as info:
        Wallet(zero)
    assert "00" * 32 not in str(info.value) and info.value.__cause__ is None
    path = tmp_path / "key"
    path.write_text(zero)
    with pytest.raises(ValueError, match="does not hold a usable private key"):
        Wallet.from_file(path)


def test_the_defect_variant_reveals_the_key_it_was_given() -> None:
    assert Wallet(KEY).reveal_for_defect() == KEY
