use std::path::Path;

use duckdb::{Config, Connection};

use crate::OpenError;

/// DuckDB's `access_mode` for a user's data.
pub(crate) const READ_ONLY: &str = "READ_ONLY";

/// The lockdown every sqlrft connection to a user's data starts from: no file, network or
/// extension access, and settings that cannot be changed back by SQL. `access` is DuckDB's
/// `access_mode` (`READ_ONLY`, `AUTOMATIC`).
pub(crate) fn lockdown(access: &'static str) -> [(&'static str, &'static str); 6] {
    [
        ("access_mode", access),
        ("enable_external_access", "false"),
        ("autoload_known_extensions", "false"),
        ("autoinstall_known_extensions", "false"),
        // One thread per query: a pool runs its connections' queries in parallel already, and
        // handing a small query to DuckDB's worker threads costs more than it runs.
        ("threads", "1"),
        // Last: once locked, the configuration takes no more changes.
        ("lock_configuration", "true"),
    ]
}

fn locked_config(access: &'static str) -> Result<Config, duckdb::Error> {
    lockdown(access)
        .into_iter()
        .try_fold(Config::default(), |config, (name, value)| {
            config.with(name, value)
        })
}

/// A user's database must exist: DuckDB would otherwise create an empty one.
pub(crate) fn ensure_exists(path: &Path) -> Result<(), OpenError> {
    match path.is_file() {
        true => Ok(()),
        false => Err(OpenError::NotFound {
            path: path.to_path_buf(),
        }),
    }
}

/// Opens one read-only, locked-down connection to a DuckDB file.
pub fn open_read_only(path: &Path) -> Result<Connection, OpenError> {
    ensure_exists(path)?;
    locked_config(READ_ONLY)
        .and_then(|config| Connection::open_with_flags(path, config))
        .map_err(|err| OpenError::DuckDb {
            path: path.to_path_buf(),
            message: crate::error::duckdb_message(&err),
        })
}

/// A fresh in-memory database for untrusted DDL and INSERTs (e.g. a dataset's `sql_context`):
/// writable, but with no file, network or extension access.
pub fn scratch_database() -> Result<Connection, OpenError> {
    locked_config("AUTOMATIC")
        .and_then(Connection::open_in_memory_with_flags)
        .map_err(|err| OpenError::DuckDb {
            path: ":memory:".into(),
            message: crate::error::duckdb_message(&err),
        })
}
