//! The only sqlrft crate that links DuckDB.
//!
//! It owns everything that touches a database file: opening it read-only and locked down
//! ([`ReadOnlyPool`]), refusing anything but a single query ([`parse_select`]), enforcing limits
//! (time via interrupt, rows, bytes) and turning DuckDB values into the typed cells of
//! [`sqlrft_core::ResultSet`]. Crates that must write (the dataset builder) use the re-exported
//! [`duckdb`] crate through here, so DuckDB is compiled once, with one feature set.

#![warn(missing_docs)]

#[cfg(feature = "clap")]
mod args;
mod catalog;
mod cells;
mod direct;
mod error;
mod gate;
mod limits;
mod official;
mod pool;
mod repeats;
mod scratch;
mod shapes;
mod types;

pub use duckdb;

#[cfg(feature = "clap")]
pub use args::{OfficialDuckdbArgs, QueryLimitArgs};
pub use catalog::{ColumnDescription, TableDescription, TableInfo, quote_identifier};
pub use cells::collect_result_set;
pub use error::{OpenError, QueryError, QueryErrorKind};
pub use gate::{outermost_order_by, parse_select};
pub use limits::Limits;
pub use official::{BENCH_ROUNDS, OfficialRun, engine_version, measure_official, round_share};
pub use pool::{PoolOptions, ReadOnlyPool};
pub use scratch::{open_read_only, scratch_database};
