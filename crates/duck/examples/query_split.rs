//! Where one query's time goes, on an OpenFlights DuckDB file (make_openflights_db.py):
//! the pool's path against its parts, down to DuckDB's C API with nothing of ours around it.
//!
//! ```text
//! cargo run --release -p sqlrft-duck --example query_split -- openflights.duckdb [N]
//! ```
//!
//! Each line is one way of running the same point queries (`… WHERE airport_id = N`, a new N each
//! time, one thread), timed over N runs after a warm-up; the lines below the pool's build it up
//! stage by stage, so the differences between them are the stages' costs. Two lines run one
//! text repeatedly instead, which the pool runs from a prepared plan.

use std::ffi::CString;
use std::time::Instant;

use sqlrft_duck::duckdb::ffi;
use sqlrft_duck::{
    Limits, PoolOptions, ReadOnlyPool, collect_result_set, open_read_only, parse_select,
};

/// The allocator the `sqlrft` binary runs with: DuckDB allocates per query, and glibc's malloc
/// costs it about a fifth of a point query.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = std::path::PathBuf::from(args.next().ok_or("usage: query_split DB [N]")?);
    let n: usize = args.next().map_or(Ok(2000), |s| s.parse())?;
    let conn = open_read_only(&path)?;
    let ids: Vec<i64> = conn
        .prepare("SELECT airport_id FROM airports ORDER BY airport_id LIMIT 500")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let point = |i: usize| {
        format!(
            "SELECT name, city, country, iata FROM airports WHERE airport_id = {}",
            ids[i % ids.len()]
        )
    };
    let limits = Limits::default();

    // Two workers, as the servers run: a caller whose query is alone may then take its answer
    // awake (the pool does not on a current-thread runtime).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let pool = ReadOnlyPool::open(
        &path,
        PoolOptions {
            connections: 1,
            ..PoolOptions::default()
        },
    )?;
    time("pool.query (what the services run)", n, |i| {
        runtime.block_on(pool.query(&point(i))).expect("query");
    });
    time("checked path: gate + duckdb-rs", n, |i| {
        let sql = point(i);
        parse_select(&conn, &sql).expect("gate");
        collect_result_set(&conn, &sql, &limits).expect("run");
    });
    time("  its gate alone (json_serialize_sql)", n, |i| {
        parse_select(&conn, &point(i)).expect("gate");
    });

    let raw = std::sync::Arc::new(RawConnection::open(&path));
    time("C API: duckdb_query", n, |i| raw.query(&point(i)));
    time("  the same, on tokio's blocking threads", n, |i| {
        let (raw, sql) = (raw.clone(), point(i));
        runtime
            .block_on(async { tokio::task::spawn_blocking(move || raw.query(&sql)).await })
            .expect("blocking task");
    });
    let (jobs, inbox) = std::sync::mpsc::channel::<(String, std::sync::mpsc::Sender<()>)>();
    let worker = {
        let raw = raw.clone();
        std::thread::spawn(move || {
            for (sql, done) in inbox {
                raw.query(&sql);
                let _ = done.send(());
            }
        })
    };
    time("  the same, on one dedicated thread", n, |i| {
        let (done, finished) = std::sync::mpsc::channel();
        jobs.send((point(i), done)).expect("worker");
        finished.recv().expect("worker");
    });
    drop(jobs);
    worker.join().expect("worker");
    // One text again and again (a reward service scoring the same candidate SQL): from its
    // second sight the pool runs it from a prepared plan, with no parse, bind or plan.
    let same = point(0);
    time("pool.query, one text again and again", n, |_| {
        runtime.block_on(pool.query(&same)).expect("query");
    });
    time("C API: duckdb_query, that text again", n, |_| {
        raw.query(&same)
    });
    // The point query's literal as a parameter, prepared once and a new id bound each run: what
    // rewriting literals into parameters would buy. DuckDB rebinds a statement whose parameter
    // sits in a filter pushed into a table scan, so this saves the parse at most.
    let template = CString::new(point(0).replace(&format!("= {}", ids[0]), "= $1"))?;
    let bound = raw.prepare(&template);
    time("C API: prepared `= $1`, a new id bound", n, |i| {
        raw.execute_bound(bound, ids[i % ids.len()])
    });
    time("C API: extract (parse)", n, |i| raw.stages(&point(i), 1));
    time("C API: extract + prepare (bind, plan)", n, |i| {
        raw.stages(&point(i), 2)
    });
    time("C API: extract + prepare + execute", n, |i| {
        raw.stages(&point(i), 3)
    });
    Ok(())
}

fn time(label: &str, n: usize, mut run: impl FnMut(usize)) {
    for i in 0..(n / 10).max(1) {
        run(i);
    }
    let started = Instant::now();
    for i in 0..n {
        run(i);
    }
    let each = started.elapsed().as_secs_f64() / n as f64;
    println!("{label:<40} {:>8.1} µs {:>8.0} q/s", each * 1e6, 1.0 / each);
}

/// A C-API connection opened with sqlrft's lockdown settings.
struct RawConnection {
    db: ffi::duckdb_database,
    con: ffi::duckdb_connection,
}

// SAFETY: used by one thread at a time (each timed call waits for the previous one).
unsafe impl Send for RawConnection {}
unsafe impl Sync for RawConnection {}

impl RawConnection {
    fn open(path: &std::path::Path) -> Self {
        let c_path = CString::new(path.to_string_lossy().as_bytes()).expect("path");
        // SAFETY: valid pointers for each call; the handles are closed on drop.
        unsafe {
            let mut config: ffi::duckdb_config = std::ptr::null_mut();
            ffi::duckdb_create_config(&mut config);
            for (name, value) in [
                ("access_mode", "READ_ONLY"),
                ("enable_external_access", "false"),
                ("autoload_known_extensions", "false"),
                ("autoinstall_known_extensions", "false"),
                ("threads", "1"),
                ("lock_configuration", "true"),
            ] {
                let (name, value) = (CString::new(name).unwrap(), CString::new(value).unwrap());
                ffi::duckdb_set_config(config, name.as_ptr(), value.as_ptr());
            }
            let (mut db, mut con) = (std::ptr::null_mut(), std::ptr::null_mut());
            let mut error = std::ptr::null_mut();
            assert_eq!(
                ffi::duckdb_open_ext(c_path.as_ptr(), &mut db, config, &mut error),
                ffi::DuckDBSuccess
            );
            ffi::duckdb_destroy_config(&mut config);
            assert_eq!(ffi::duckdb_connect(db, &mut con), ffi::DuckDBSuccess);
            RawConnection { db, con }
        }
    }

    fn query(&self, sql: &str) {
        let sql = CString::new(sql).expect("sql");
        // SAFETY: an open connection; the result is destroyed.
        unsafe {
            let mut result: ffi::duckdb_result = std::mem::zeroed();
            assert_eq!(
                ffi::duckdb_query(self.con, sql.as_ptr(), &mut result),
                ffi::DuckDBSuccess
            );
            ffi::duckdb_destroy_result(&mut result);
        }
    }

    /// Parse (1), then prepare (2), then execute (3).
    fn stages(&self, sql: &str, stages: usize) {
        let sql = CString::new(sql).expect("sql");
        // SAFETY: an open connection; every handle is destroyed.
        unsafe {
            let mut extracted: ffi::duckdb_extracted_statements = std::ptr::null_mut();
            assert_eq!(
                ffi::duckdb_extract_statements(self.con, sql.as_ptr(), &mut extracted),
                1
            );
            let mut statement: ffi::duckdb_prepared_statement = std::ptr::null_mut();
            if stages >= 2 {
                assert_eq!(
                    ffi::duckdb_prepare_extracted_statement(self.con, extracted, 0, &mut statement),
                    ffi::DuckDBSuccess
                );
            }
            if stages >= 3 {
                let mut result: ffi::duckdb_result = std::mem::zeroed();
                assert_eq!(
                    ffi::duckdb_execute_prepared(statement, &mut result),
                    ffi::DuckDBSuccess
                );
                ffi::duckdb_destroy_result(&mut result);
            }
            ffi::duckdb_destroy_prepare(&mut statement);
            ffi::duckdb_destroy_extracted(&mut extracted);
        }
    }
}

impl RawConnection {
    /// `template` prepared on this connection; never destroyed (the example ends soon after).
    fn prepare(&self, template: &CString) -> ffi::duckdb_prepared_statement {
        let mut statement: ffi::duckdb_prepared_statement = std::ptr::null_mut();
        // SAFETY: an open connection and NUL-terminated text.
        let state = unsafe { ffi::duckdb_prepare(self.con, template.as_ptr(), &mut statement) };
        assert_eq!(state, ffi::DuckDBSuccess, "prepare");
        statement
    }

    /// Binds `id` to the first parameter, as the type DuckDB inferred for it (another type
    /// would make DuckDB rebind the statement), and executes it.
    fn execute_bound(&self, statement: ffi::duckdb_prepared_statement, id: i64) {
        // SAFETY: a prepared statement of this open connection; the result is destroyed.
        unsafe {
            let state =
                if ffi::duckdb_param_type(statement, 1) == ffi::DUCKDB_TYPE_DUCKDB_TYPE_INTEGER {
                    ffi::duckdb_bind_int32(statement, 1, id as i32)
                } else {
                    ffi::duckdb_bind_int64(statement, 1, id)
                };
            assert_eq!(state, ffi::DuckDBSuccess, "bind");
            let mut result: ffi::duckdb_result = std::mem::zeroed();
            assert_eq!(
                ffi::duckdb_execute_prepared(statement, &mut result),
                ffi::DuckDBSuccess
            );
            ffi::duckdb_destroy_result(&mut result);
        }
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        // SAFETY: opened in `open`, closed once.
        unsafe {
            ffi::duckdb_disconnect(&mut self.con);
            ffi::duckdb_close(&mut self.db);
        }
    }
}
