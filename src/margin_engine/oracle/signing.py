"""Ed25519 signatures on price updates, so that only a registered source can move its own quote.

Lyra v2 accepts signed pushes only from whitelisted signers (`BaseLyraFeed.sol`); we do the same with
Ed25519 (RFC 8032) over a canonical byte encoding, one key per source.

Canonical encoding, version 1: UTF-8 text, seven lines, each ending in a newline:

    margin-engine/price-update/v1
    underlying=BTC
    source=coinbase
    price=60000.5
    confidence=12.25
    timestamp_s=1795593600
    volume=

Numbers are the shortest decimal that reads back as the same float64 (Python's `repr`), written
without exponent, without trailing zeros or a trailing point (`60000`, `0.0000125`); an absent
confidence or volume is empty. Names cannot hold a newline or `=` (`SOURCE_RE`), so the text is
unambiguous. Keys are raw 32-byte Ed25519 keys written as 64 hex digits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from margin_engine.errors import InputError
from margin_engine.oracle.aggregator import PriceUpdate

ENCODING_HEADER = "margin-engine/price-update/v1"


class UnknownSource(InputError):
    """A source with no registered public key."""


def decimal_text(value: float, field: str) -> str:
    """The canonical decimal of a float: shortest round-trip digits, plain notation."""
    if not math.isfinite(value):
        raise InputError(field, f"cannot encode a non-finite number: {value!r}")
    text = format(Decimal(repr(value)).normalize(), "f")
    return "0" if text == "-0" else text


def canonical_bytes(update: PriceUpdate) -> bytes:
    """The bytes a source signs (format in the module docstring)."""

    def optional(value: float | None, field: str) -> str:
        return "" if value is None else decimal_text(value, field)

    lines = (
        ENCODING_HEADER,
        f"underlying={update.underlying}",
        f"source={update.source}",
        f"price={decimal_text(update.price, 'price')}",
        f"confidence={optional(update.confidence, 'confidence')}",
        f"timestamp_s={update.timestamp_s}",
        f"volume={optional(update.volume, 'volume')}",
    )
    return "".join(line + "\n" for line in lines).encode()


def sign_update(private_key: Ed25519PrivateKey, update: PriceUpdate) -> bytes:
    """A 64-byte Ed25519 signature of the update's canonical bytes."""
    return private_key.sign(canonical_bytes(update))


def verify_update(public_key: Ed25519PublicKey, update: PriceUpdate, signature: bytes) -> bool:
    """True when `signature` is the key's signature of exactly this update; never raises on a bad one."""
    try:
        public_key.verify(signature, canonical_bytes(update))
    except (InvalidSignature, InputError):  # InputError: a non-finite number, which no source signs
        return False
    return True


def _key_bytes(text: str, field: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        raise InputError(field, "expected 64 hex digits (a raw 32-byte Ed25519 key)") from None
    if len(raw) != 32:
        raise InputError(field, f"expected 64 hex digits (a raw 32-byte Ed25519 key), got {len(raw) * 2}")
    return raw


def load_private_key(text: str, field: str = "private_key") -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_key_bytes(text, field))


def load_public_key(text: str, field: str = "public_key") -> Ed25519PublicKey:
    return _public_key(_key_bytes(text, field))


@lru_cache(maxsize=1024)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    """Loaded once per key: every signed update names its source's key (keys are immutable)."""
    return Ed25519PublicKey.from_public_bytes(raw)


def dump_private_key(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()


def dump_public_key(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


@dataclass(frozen=True)
class KeyRegistry:
    """Source name -> public key: the whitelist of who may push prices."""

    keys: tuple[tuple[str, Ed25519PublicKey], ...]

    @classmethod
    def from_hex(cls, keys: Mapping[str, str], field: str = "keys") -> KeyRegistry:
        """From `{"coinbase": "<64 hex digits>", ...}`, e.g. a profile's table."""
        return cls(tuple((source, load_public_key(text, f"{field}.{source}")) for source, text in sorted(keys.items())))

    def to_hex(self) -> dict[str, str]:
        return {source: dump_public_key(key) for source, key in self.keys}

    def public_key(self, source: str) -> Ed25519PublicKey:
        for name, key in self.keys:
            if name == source:
                return key
        raise UnknownSource("source", f"no public key for {source!r}; registered: {', '.join(self.sources) or 'none'}")

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.keys)

    def verify(self, update: PriceUpdate, signature: bytes) -> bool:
        """The update is signed by its own source's key (an unknown source verifies nothing)."""
        try:
            key = self.public_key(update.source)
        except UnknownSource:
            return False
        return verify_update(key, update, signature)
