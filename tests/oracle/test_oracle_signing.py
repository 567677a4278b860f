"""Ed25519 signatures of price updates: what is signed, and that any change breaks the signature."""

import math
from dataclasses import replace

import pytest

from margin_engine.errors import InputError
from margin_engine.oracle import PriceUpdate
from margin_engine.oracle.signing import (
    KeyRegistry,
    UnknownSource,
    canonical_bytes,
    decimal_text,
    dump_private_key,
    dump_public_key,
    load_private_key,
    load_public_key,
    sign_update,
    verify_update,
)

# RFC 8032 section 7.1, test 1: a fixed key, so the test is deterministic
SECRET_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
PUBLIC_HEX = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
KEY = load_private_key(SECRET_HEX)
OTHER = load_private_key("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")  # RFC 8032 test 2
UPDATE = PriceUpdate("BTC", "coinbase", 60000.5, 12.25, 1795593600, None)


def test_canonical_bytes():
    assert canonical_bytes(UPDATE) == (
        b"margin-engine/price-update/v1\n"
        b"underlying=BTC\nsource=coinbase\nprice=60000.5\nconfidence=12.25\ntimestamp_s=1795593600\nvolume=\n"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(60000.0, "60000"), (60000.5, "60000.5"), (0.1, "0.1"), (1.25e-5, "0.0000125"), (1e21, "1000000000000000000000"),
     (0.0, "0"), (-0.0, "0"), (0.1 + 0.2, "0.30000000000000004")],
)  # fmt: skip
def test_decimal_text_is_the_shortest_round_trip_in_plain_notation(value, text):
    assert decimal_text(value, "price") == text
    assert float(text) == value


def test_decimal_text_refuses_non_finite():
    with pytest.raises(InputError) as exc:
        decimal_text(math.nan, "price")
    assert exc.value.field == "price"


def test_keys_round_trip_as_hex_and_match_rfc_8032():
    assert dump_public_key(KEY.public_key()) == PUBLIC_HEX
    assert dump_private_key(KEY) == SECRET_HEX
    assert dump_public_key(load_public_key(PUBLIC_HEX)) == PUBLIC_HEX


@pytest.mark.parametrize("text", ["zz" * 32, "ab" * 31, "ab" * 33, ""])
def test_bad_key_hex(text):
    with pytest.raises(InputError) as exc:
        load_public_key(text, "keys.coinbase")
    assert exc.value.field == "keys.coinbase"


def test_valid_signature_verifies():
    signature = sign_update(KEY, UPDATE)
    assert len(signature) == 64
    assert verify_update(KEY.public_key(), UPDATE, signature)


@pytest.mark.parametrize(
    "changed",
    [
        replace(UPDATE, price=60000.51),
        replace(UPDATE, timestamp_s=1795593601),
        replace(UPDATE, confidence=None),
        replace(UPDATE, volume=1.0),
        replace(UPDATE, source="kraken"),
        replace(UPDATE, underlying="ETH"),
    ],
)
def test_any_change_breaks_the_signature(changed):
    assert not verify_update(KEY.public_key(), changed, sign_update(KEY, UPDATE))


def test_signature_by_another_key_fails():
    assert not verify_update(KEY.public_key(), UPDATE, sign_update(OTHER, UPDATE))
    assert not verify_update(KEY.public_key(), UPDATE, b"\x00" * 64)
    assert not verify_update(KEY.public_key(), UPDATE, b"short")


def test_a_nan_update_never_verifies():
    assert not verify_update(KEY.public_key(), replace(UPDATE, price=math.nan), sign_update(KEY, UPDATE))


def test_key_registry():
    registry = KeyRegistry.from_hex({"coinbase": PUBLIC_HEX, "kraken": dump_public_key(OTHER.public_key())})
    assert registry.sources == ("coinbase", "kraken")
    assert registry.to_hex()["coinbase"] == PUBLIC_HEX
    assert registry.verify(UPDATE, sign_update(KEY, UPDATE))
    assert not registry.verify(UPDATE, sign_update(OTHER, UPDATE))  # kraken's key signing coinbase's update
    stranger = replace(UPDATE, source="stranger")
    assert not registry.verify(stranger, sign_update(KEY, stranger))
    with pytest.raises(UnknownSource) as exc:
        registry.public_key("stranger")
    assert exc.value.field == "source"


def test_registry_names_the_bad_key():
    with pytest.raises(InputError) as exc:
        KeyRegistry.from_hex({"coinbase": "nothex"})
    assert exc.value.field == "keys.coinbase"
