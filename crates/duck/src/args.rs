//! The flags of a command that opens a [`crate::ReadOnlyPool`] for others' queries (`mcp serve`,
//! `reward serve`): one spelling for the pool's size and its per-query limits. Like every shared
//! flag group it is all `Option`, serialized only when given, so it overrides `sqlrft.toml` and
//! `SQLRFT_<SECTION>_*` without resetting them; each command's config holds its own defaults.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

/// The limits on SQL a service runs in its read-only DuckDB connections.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct QueryLimitArgs {
    /// Read-only connections kept open; queries run side by side up to this many [default: 8].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Time limit of one query in seconds; the query is interrupted [default: 10].
    // Negative numbers parse so that motherduck's `--query-timeout -1` (no limit) gets the
    // services' own explanation instead of clap's "unexpected argument '-1'".
    #[arg(
        long = "query-timeout",
        alias = "timeout",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_timeout_secs: Option<f64>,
    /// Rows kept from a query's result; the rest is cut off [default: 10000].
    #[arg(long, value_name = "ROWS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<usize>,
}

/// Where a benchmark finds the official DuckDB wheel for its engine-ceiling row
/// ([`crate::measure_official`]).
#[derive(Debug, Clone, Args)]
pub struct OfficialDuckdbArgs {
    /// Python whose `duckdb` module is the official wheel of the DuckDB version sqlrft links;
    /// without one the row is skipped with the reason.
    #[arg(
        long = "duckdb-python",
        env = "SQLRFT_DUCKDB_PYTHON",
        value_name = "PYTHON",
        default_value = "python3"
    )]
    pub python: PathBuf,
}
