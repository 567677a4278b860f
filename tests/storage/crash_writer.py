"""A journal writer made to be killed (test_crash.py): appends commands and prints each acknowledged one.

    python crash_writer.py DB_URL SEED FIRST COUNT

Command k (a deposit, a withdrawal or a perp trade, as `command(k)` says) goes in with client id `w<k>`,
alone or in a group commit of up to 20; after the commit returns, "<seq> w<k>" is printed and flushed.
A run after a kill starts again after the last acknowledged k: what committed without being acknowledged
comes back through its client id, applied once.
"""

from __future__ import annotations

import random
import sys

from margin_engine.storage import Journal

ACCOUNTS = ("a0", "a1", "a2", "a3")
SNAPSHOT_EVERY = 7


def setup() -> list[dict]:
    cmds: list[dict] = [
        {"type": "advance_time", "time": 1795593600},
        {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"},
    ]
    for name in ACCOUNTS:
        cmds += [
            {"type": "open_account", "account": name},
            {"type": "deposit", "account": name, "amount": "100000"},
        ]
    return cmds


def command(k: int) -> dict:
    account = ACCOUNTS[k % len(ACCOUNTS)]
    if k % 5 == 4:
        buyer, seller = (account, ACCOUNTS[(k + 1) % 4]) if k % 2 else (ACCOUNTS[(k + 1) % 4], account)
        size = f"0.{k % 9 + 1}"
        trade = {"type": "trade", "buyer": buyer, "seller": seller, "instrument": "BTC-PERP"}
        return {**trade, "size": size, "price": "60000"}
    if k % 7 == 6:
        return {"type": "withdraw", "account": account, "amount": f"{k % 50 + 1}.25"}
    return {"type": "deposit", "account": account, "amount": f"{k % 97 + 1}.5"}


def main(url: str, seed: int, first: int, count: int) -> None:
    rng = random.Random(seed)
    with Journal.open(url, snapshot_every=SNAPSHOT_EVERY) as journal:
        engine = journal.load()
        k = first
        while k < first + count:
            group = range(k, min(k + rng.choice((1, 1, 1, 4, 20)), first + count))
            for receipt in journal.submit_batch(engine, [(command(i), f"w{i}") for i in group]):
                print(f"{receipt.seq} {receipt.client_id}", flush=True)
            k = group.stop


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
