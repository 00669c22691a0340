"""Writes the Parquet loader fixtures: the first rows of three shared data sets as Parquet
(snappy and zstd, as hub exports are compressed) next to the same rows as JSONL, so the Rust
Parquet reader is checked against the JSON reader on identical data.

Usage: python3 scripts/make_parquet_fixtures.py [SHARED_DATA_DIR]   (needs pyarrow)
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../shared/data")
OUT = os.path.join(os.path.dirname(__file__), "../tests/fixtures/data")

SETS = [
    # (source file, rows, fields kept, output name, compression)
    ("gsm8k/test.jsonl", 5, ["question", "answer"], "gsm8k_head", "snappy"),
    ("eval/math500.jsonl", 4, ["problem", "answer", "unique_id"], "math500_head", "zstd"),
    ("eval/olympiadbench.jsonl", 4, ["id", "question", "final_answer"], "olympiadbench_head", "zstd"),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for src, n, fields, name, codec in SETS:
        with open(os.path.join(DATA, src), encoding="utf-8") as f:
            rows = [json.loads(next(f)) for _ in range(n)]
        rows = [{k: r[k] for k in fields} for r in rows]
        pq.write_table(pa.Table.from_pylist(rows), os.path.join(OUT, f"{name}.parquet"), compression=codec)
        with open(os.path.join(OUT, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{name}: {n} rows, {codec}")


if __name__ == "__main__":
    main()
