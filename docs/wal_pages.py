#!/usr/bin/env python3
"""Counts the pages one batch commit writes to SQLite's log, and which table or index each
belongs to, for the persistence bench's batch shape (docs/BENCHMARKS.md, "Persistence").

It applies migrations/sqlite in order to a scratch file, opens 64 conversations, then
commits 200 batches of 1024 messages round robin over them with the statements the server
uses (one multi-row INSERT ... ON CONFLICT DO NOTHING, one UPDATE per conversation), with
automatic checkpoints off so the log only grows. A commit's pages are the log's growth
divided by the frame size; the last batch's frames are mapped to b-trees with `dbstat`.

    python3 docs/wal_pages.py widget            # the widget's time-first client ids
    python3 docs/wal_pages.py random            # 96 random bits, as the widget sent before
    python3 docs/wal_pages.py bench             # "bench-<conversation>-<seq>", the bench's old ids
    python3 docs/wal_pages.py random --index conversation-first   # the index before 2026-12-04

It needs Python's sqlite3 built with dbstat (Debian's is); its SQLite may be older than
the bundled one, the b-tree layout is the same.
"""
import argparse
import glob
import os
import sqlite3
import struct
import tempfile
from collections import Counter

FRAME = 4096 + 24
NOW = 1_795_305_600_000
BATCH = 1024


def base36(n, width):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(width):
        out = digits[n % 36] + out
        n //= 36
    return out


def client_id(kind, conversation, seq):
    if kind == "widget":
        return "w-" + base36(NOW + seq, 9) + os.urandom(8).hex()
    if kind == "random":
        return os.urandom(12).hex()
    return f"bench-{conversation}-{seq}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ids", choices=["widget", "random", "bench"])
    p.add_argument("--index", choices=["client-first", "conversation-first"], default="client-first")
    p.add_argument("--conversations", type=int, default=64)
    args = p.parse_args()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "migrations", "sqlite")
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "pages.db")
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA wal_autocheckpoint = 0")
        c.execute("PRAGMA foreign_keys = ON")
        for up in sorted(glob.glob(os.path.join(root, "*", "up.sql"))):
            c.executescript(open(up).read())
        if args.index == "conversation-first":
            c.execute("DROP INDEX messages_client_id")
            c.execute(
                "CREATE UNIQUE INDEX messages_client_id ON messages"
                "(conversation_id, author_kind, author_id, client_id) WHERE client_id IS NOT NULL"
            )
        conversations = []
        for i in range(args.conversations):
            v = c.execute("INSERT INTO visitors (token_hash, created_at) VALUES (?, ?)", (f"t{i}", NOW)).lastrowid
            cid = c.execute(
                "INSERT INTO conversations (visitor_id, channel, created_at, updated_at) VALUES (?, 'web', ?, ?)",
                (v, NOW, NOW),
            ).lastrowid
            conversations.append((cid, v))
        seq = [1] * len(conversations)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        def commit():
            rows, touched = [], {}
            for k in range(BATCH):
                i = k % len(conversations)
                cid, v = conversations[i]
                s = seq[i]
                seq[i] += 1
                body = f"Hello, I have a question about my order number {s}, can someone help?"
                rows.append((cid, s, "text", "visitor", v, client_id(args.ids, cid, s), body, NOW + s, None))
                touched[cid] = (s, NOW + s)
            c.execute("BEGIN IMMEDIATE")
            for j in range(0, len(rows), 256):
                chunk = rows[j : j + 256]
                c.execute(
                    "INSERT INTO messages (conversation_id, seq, kind, author_kind, author_id, client_id, "
                    "body, created_at, meta) VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                    + " ON CONFLICT DO NOTHING",
                    [x for r in chunk for x in r],
                )
            for cid, (s, at) in touched.items():
                c.execute(
                    "UPDATE conversations SET last_seq = ?, updated_at = ? WHERE id = ? AND last_seq < ?",
                    (s, at, cid, s),
                )
            c.execute("COMMIT")

        wal = db + "-wal"
        pages = []
        for _ in range(200):
            before = os.path.getsize(wal)
            commit()
            pages.append((os.path.getsize(wal) - before) // FRAME)
        before = os.path.getsize(wal)
        commit()
        with open(wal, "rb") as f:
            f.seek(before)
            frames = f.read()
        owner = {pageno: name for name, pageno in c.execute("SELECT name, pageno FROM dbstat")}
        where = Counter(
            owner.get(struct.unpack(">I", frames[i : i + 4])[0], "?") for i in range(0, len(frames), FRAME)
        )
        print(
            f"ids={args.ids} index={args.index} conversations={args.conversations}: "
            f"{sum(pages[100:]) / 100:.0f} pages per commit (batches 101-200)"
        )
        print("last commit by b-tree:", ", ".join(f"{n} {k}" for k, n in where.most_common(8)))


if __name__ == "__main__":
    main()
