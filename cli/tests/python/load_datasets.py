"""Loads each dataset sqlrft writes with the readers people use, and fails on the first that cannot.

usage: load_datasets.py PATH...
  PATH.jsonl: pyarrow's JSON reader, pandas' read_json (dtype inference on) and `datasets`' json
              builder must each load every line; a typed ground truth must come back exactly.
  PATH/ (a `publish dataset` folder: README.md + data/*.parquet): `load_dataset` on the folder
              (its card's configs and features) and pyarrow.parquet on each file.
Prints one JSON line per path: what was loaded and how many rows.
"""
import glob
import json
import os
import sys

import datasets
import pandas
import pyarrow.json
import pyarrow.parquet

datasets.disable_progress_bars()


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    options = pyarrow.json.ReadOptions(block_size=1 << 26)
    table = pyarrow.json.read_json(path, read_options=options)
    assert table.num_rows == len(lines), (path, table.num_rows, len(lines))
    frame = pandas.read_json(path, lines=True)
    assert len(frame) == len(lines), (path, len(frame))
    ds = datasets.load_dataset("json", data_files=path, split="train")
    assert len(ds) == len(lines), (path, len(ds))
    typed = 0
    if "ground_truth" in table.column_names:
        truths = table.column("ground_truth").to_pylist()
        for line, truth, row in zip(lines, truths, ds):
            written = line["ground_truth"]
            if isinstance(written, dict) and "rows_json" in written:
                # Lossless: the Arrow value is the written text, and it parses back to the rows.
                assert truth["rows_json"] == written["rows_json"]
                assert row["ground_truth"]["rows_json"] == written["rows_json"]
                assert isinstance(json.loads(truth["rows_json"]), list)
                assert truth["types"] == written["types"]
                typed += 1
    return {"path": path, "rows": len(lines), "typed_ground_truths": typed}


def folder(path):
    files = sorted(glob.glob(os.path.join(path, "data", "*.parquet")))
    assert files, f"{path} has no data/*.parquet"
    rows = {f: pyarrow.parquet.read_table(f).num_rows for f in files}
    loaded = datasets.load_dataset(path)
    splits = {name: len(split) for name, split in loaded.items()}
    assert sum(splits.values()) == sum(rows.values()), (splits, rows)
    for name in splits:
        expected = sum(n for f, n in rows.items() if os.path.basename(f).startswith(name + "-"))
        assert splits[name] == expected, (name, splits[name], expected)
    return {"path": path, "splits": splits, "parquet_files": len(files)}


for arg in sys.argv[1:]:
    print(json.dumps(folder(arg) if os.path.isdir(arg) else jsonl(arg)), flush=True)
# Every check has passed by here. Skip the interpreter's teardown: with pyarrow's and `datasets`'
# worker threads still alive it sometimes aborts in C++ ("terminate called without an active
# exception"), which would fail a run whose readers all succeeded.
os._exit(0)
