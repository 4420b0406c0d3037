"""The official DuckDB Python wheel on a benchmark's queries: the engine's ceiling, measured.

Run by `sqlrft_duck::official` with a JSON job on stdin:
  {"version": "2.0.0", "db": PATH, "queries": [SQL, ...], "concurrency": N, "warmup": N}
Without a `duckdb` module it prints {"missing": "duckdb"}, and with another DuckDB version than
the job's {"version": THEIRS}, and runs nothing. Otherwise it opens the file with the same lockdown sqlrft uses (read-only, one thread per connection, no
external access, no extension autoload or autoinstall, configuration locked), runs every query
with `execute().fetchall()` from N threads (one cursor each) and prints one JSON line:
  {"version": "2.0.0", "seconds": WALL, "latencies_us": [...]}
"""
import json
import sys
import threading
import time


def main() -> None:
    job = json.load(sys.stdin)
    try:
        import duckdb
    except ImportError:
        print(json.dumps({"missing": "duckdb"}))
        return
    if duckdb.__version__ != job["version"]:
        print(json.dumps({"version": duckdb.__version__}))
        return
    config = {
        "threads": "1",
        "enable_external_access": "false",
        "autoload_known_extensions": "false",
        "autoinstall_known_extensions": "false",
        "lock_configuration": "true",
    }
    con = duckdb.connect(job["db"], read_only=True, config=config)
    queries = job["queries"]
    concurrency = max(1, int(job["concurrency"]))
    cursors = [con.cursor() for _ in range(concurrency)]
    for i in range(min(len(queries), int(job["warmup"]))):
        cursors[i % concurrency].execute(queries[i]).fetchall()

    latencies = []
    errors = []
    lock = threading.Lock()
    position = [0]

    def worker(cursor) -> None:
        mine = []
        try:
            while True:
                with lock:
                    i = position[0]
                    position[0] += 1
                if i >= len(queries):
                    break
                sent = time.perf_counter()
                cursor.execute(queries[i]).fetchall()
                mine.append((time.perf_counter() - sent) * 1e6)
        except duckdb.Error as error:
            # A thread's exception would end only that thread: report it for the whole run.
            errors.append(f"{queries[i]!r}: {error}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in cursors]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        sys.exit(errors[0])
    print(json.dumps({"version": duckdb.__version__, "seconds": seconds, "latencies_us": latencies}))


if __name__ == "__main__":
    main()
