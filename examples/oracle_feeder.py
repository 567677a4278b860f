#!/usr/bin/env python3
"""An example price feeder: sign updates with a source's key file and POST them to the service.

    margin-engine oracle keygen --out coinbase.key               # prints the public key
    margin-engine oracle source add coinbase --public-key HEX --db margin-engine.db
    margin-engine create-key oracle --db margin-engine.db        # the API key, for MARGIN_ENGINE_API_KEY
    margin-engine serve --db margin-engine.db
    MARGIN_ENGINE_API_KEY=me_... python examples/oracle_feeder.py --key coinbase.key --source coinbase \\
        --underlying BTC --price 60000.5 --confidence 12.5

Each price is signed with Ed25519 over the update's canonical bytes (margin_engine.oracle.signing: one
field per line, numbers as the shortest round-trip decimal) and sent to `POST /v1/oracle/updates` with
the same numbers as decimal strings, so that the engine verifies exactly what was signed. The timestamp is
the wall clock (Unix seconds) unless `--timestamp` is given; the engine refuses one more than
`future_skew_s_max` (5 s) past its own clock, or not after the source's previous one. `--price` may be
repeated (`--interval` seconds apart; with `--timestamp`, each next one `--step` seconds later). One JSON
line per update: the HTTP status and the answer. Exit 0 when every update was accepted, 1 otherwise.

A real feeder replaces `--price` with its venue's prices; `signed_update` and `post` are the parts to keep.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.signing import decimal_text, load_private_key, sign_update


def signed_update(
    private_key_hex: str,
    underlying: str,
    source: str,
    price: float,
    timestamp_s: int,
    confidence: float | None = None,
    volume: float | None = None,
) -> dict:
    """The JSON body of `POST /v1/oracle/updates` for one update, signed with the source's private key."""
    update = PriceUpdate(underlying, source, price, confidence, timestamp_s, volume)
    body = {
        "underlying": underlying,
        "source": source,
        "price": decimal_text(update.price, "price"),
        "timestamp": timestamp_s,
        "signature": sign_update(load_private_key(private_key_hex), update).hex(),
    }
    if confidence is not None:
        body["confidence"] = decimal_text(update.confidence, "confidence")
    if volume is not None:
        body["volume"] = decimal_text(update.volume, "volume")
    return body


def post(url: str, api_key: str, body: dict, timeout_s: float = 10.0) -> tuple[int, dict]:
    """POST one update; (HTTP status, answer). A 409 is a rejection with its `code` (bad_signature, ...)."""
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/oracle/updates",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": api_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"message": text.decode(errors="replace")[:300]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", required=True, type=Path, help="the source's private key file (oracle keygen)")
    parser.add_argument("--source", required=True, help="the name it is registered under")
    parser.add_argument("--underlying", default="BTC")
    parser.add_argument("--price", required=True, type=float, action="append", help="USD; repeat for several")
    parser.add_argument("--confidence", type=float, help="+/- band in USD, as Pyth publishes it")
    parser.add_argument("--volume", type=float)
    parser.add_argument("--timestamp", type=int, help="Unix seconds of the first update (default: now)")
    parser.add_argument("--step", type=int, default=10, help="seconds between timestamps given with --timestamp")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds to wait between updates")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=os.environ.get("MARGIN_ENGINE_API_KEY"), help="an oracle key")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("an oracle API key is needed: --api-key or MARGIN_ENGINE_API_KEY")
    try:
        private_key = args.key.read_text(encoding="ascii").strip()
        load_private_key(private_key)
    except (OSError, ValueError) as exc:
        parser.error(f"--key: cannot read a private key (64 hex digits) from {args.key}: {exc}")
    ok = True
    for i, price in enumerate(args.price):
        if i and args.interval:
            time.sleep(args.interval)
        timestamp = int(time.time()) if args.timestamp is None else args.timestamp + i * args.step
        body = signed_update(private_key, args.underlying, args.source, price, timestamp, args.confidence, args.volume)
        status, answer = post(args.url, args.api_key, body)
        print(json.dumps({"price": price, "timestamp": timestamp, "status": status, "answer": answer}), flush=True)
        ok = ok and status == 200
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
