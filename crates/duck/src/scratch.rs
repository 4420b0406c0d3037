use std::path::Path;

use duckdb::{AccessMode, Config, Connection};

use crate::OpenError;

/// The lockdown every sqlrft connection to a user's data starts from: no file, network or
/// extension access, and settings that cannot be changed back by SQL.
fn locked_config(access: AccessMode) -> Result<Config, duckdb::Error> {
    Config::default()
        .access_mode(access)?
        .enable_external_access(false)?
        .enable_autoload_extension(false)?
        .with("autoinstall_known_extensions", "false")?
        // One thread per query: a pool runs its connections' queries in parallel already, and
        // handing a small query to DuckDB's worker threads costs more than it runs.
        .threads(1)?
        .with("lock_configuration", "true")
}

/// Opens one read-only, locked-down connection to a DuckDB file.
pub fn open_read_only(path: &Path) -> Result<Connection, OpenError> {
    if !path.is_file() {
        return Err(OpenError::NotFound {
            path: path.to_path_buf(),
        });
    }
    locked_config(AccessMode::ReadOnly)
        .and_then(|config| Connection::open_with_flags(path, config))
        .map_err(|err| OpenError::DuckDb {
            path: path.to_path_buf(),
            message: crate::error::duckdb_message(&err),
        })
}

/// A fresh in-memory database for untrusted DDL and INSERTs (e.g. a dataset's `sql_context`):
/// writable, but with no file, network or extension access.
pub fn scratch_database() -> Result<Connection, OpenError> {
    locked_config(AccessMode::Automatic)
        .and_then(Connection::open_in_memory_with_flags)
        .map_err(|err| OpenError::DuckDb {
            path: ":memory:".into(),
            message: crate::error::duckdb_message(&err),
        })
}
