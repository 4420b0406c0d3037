//! `sqlrft mcp serve` settings: flags, `[mcp]` in sqlrft.toml, `SQLRFT_MCP_*`, and `PORT`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use sqlrft_duck::{Limits, PoolOptions, QueryLimitArgs};
use sqlrft_serve::ServeArgs;

/// Everything the server needs to run, after all configuration layers are merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// How MCP hosts reach the server: streamable HTTP, or the stdin/stdout of this process.
    pub transport: Transport,
    /// DuckDB file to serve (read-only).
    pub db: Option<PathBuf>,
    /// Serve the built-in demo database instead of `db`.
    pub demo: bool,
    /// Interface to listen on.
    pub host: String,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// Open read-only connections (queries run side by side up to this many).
    pub connections: usize,
    /// Requests allowed to wait for a connection before the server answers 503.
    pub max_waiting: usize,
    /// Time limit of one query; past it the query is interrupted.
    pub query_timeout_secs: f64,
    /// Rows kept in `structuredContent` (the text table always stops at 1,024).
    pub max_rows: usize,
    /// Characters of the text table before it is cut off (mcp-server-motherduck's `max_chars`).
    pub max_chars: usize,
    /// Bytes a result may take while it is read; a larger one is refused.
    pub max_result_bytes: usize,
    /// Bytes of a request body before the server answers 413.
    pub max_body_bytes: usize,
    /// Bearer token required on /mcp when set.
    pub token: Option<String>,
    /// The URL clients reach the server at (`https://my-svc.a.run.app`), naming the resource in
    /// its OAuth metadata; unset: taken from each request's Host and `X-Forwarded-Proto`.
    pub public_url: Option<String>,
    /// Host header values accepted; empty = loopback names when bound to loopback, else any.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted (`scheme://host:port`, `:*` for any port); `*` disables the check.
    pub allowed_origins: Vec<String>,
    /// Keep MCP sessions (Mcp-Session-Id) instead of answering every request statelessly.
    /// Stateless is what the RFT tutorial's client needs and what scales on Cloud Run.
    pub sessions: bool,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            transport: Transport::Http,
            db: None,
            demo: false,
            host: "127.0.0.1".into(),
            port: 8080,
            connections: 8,
            max_waiting: 256,
            query_timeout_secs: 10.0,
            max_rows: 10_000,
            max_chars: crate::table::MAX_CHARS,
            max_result_bytes: 16 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            token: None,
            public_url: None,
            allowed_hosts: Vec::new(),
            allowed_origins: vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ],
            sessions: false,
        }
    }
}

/// How MCP hosts reach the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Streamable HTTP at /mcp (what remote hosts, the RFT tutorial and the reward service use).
    /// `stream` is mcp-server-motherduck's name for it.
    #[default]
    #[value(alias = "stream")]
    #[serde(alias = "stream")]
    Http,
    /// JSON-RPC over this process's stdin and stdout, one message per line: how Claude Desktop,
    /// Cursor and most MCP hosts start a local server. Logs go to stderr.
    Stdio,
}

impl McpConfig {
    /// Refuses settings no server could run with, naming the setting and the fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        let timeout = self.query_timeout_secs;
        if !(timeout.is_finite() && timeout > 0.0) {
            anyhow::bail!(
                "query timeout {timeout} s is not a positive number of seconds: sqlrft always \
                 limits a query's time (mcp-server-motherduck's -1, no limit, is not supported); \
                 pass e.g. --query-timeout 10"
            );
        }
        for (value, name) in [
            (self.connections, "connections"),
            (self.max_rows, "max rows"),
            (self.max_chars, "max chars"),
            (self.max_result_bytes, "max result bytes"),
            (self.max_body_bytes, "max body bytes"),
        ] {
            if value == 0 {
                anyhow::bail!("{name} is 0: nothing could be served; give a positive number");
            }
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            anyhow::bail!(
                "public URL `{url}` is not an http(s) URL; pass e.g. --public-url https://my-svc.a.run.app"
            );
        }
        Ok(())
    }

    /// The connection pool these settings ask for.
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            connections: self.connections,
            max_waiting: self.max_waiting,
            limits: Limits {
                timeout: Duration::from_secs_f64(self.query_timeout_secs),
                max_rows: self.max_rows,
                max_bytes: self.max_result_bytes,
            },
        }
    }
}

/// Serve a DuckDB file read-only over MCP: streamable HTTP at /mcp and /mcp/ (the default), or
/// stdio for MCP hosts that start the server themselves (`--transport stdio`).
///
/// mcp-server-motherduck's flag names work too (`--db-path`, `--read-only`, `--max-rows`,
/// `--max-chars`, `--query-timeout`, `--transport stdio|stream`), so a motherduck command line
/// can be pointed at sqlrft by changing the command. motherduck's default transport is stdio and
/// sqlrft's is HTTP: a host's config line needs `--transport stdio`, which both accept.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct McpServeArgs {
    /// `http`: streamable HTTP at /mcp [default]. `stdio`: JSON-RPC on stdin/stdout, what Claude
    /// Desktop, Cursor and other MCP hosts start (logs go to stderr; --host, --port, --token and
    /// the other HTTP flags are refused). `stream` is motherduck's name for `http`.
    #[arg(long, value_enum, value_name = "TRANSPORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// DuckDB file to serve, opened read-only.
    #[arg(value_name = "DB", conflicts_with_all = ["demo", "db_path"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
    /// The DuckDB file, as mcp-server-motherduck names it (the same as DB).
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    #[serde(skip)]
    pub db_path: Option<PathBuf>,
    /// Accepted for mcp-server-motherduck command lines: sqlrft always serves read-only.
    #[arg(long)]
    #[serde(skip)]
    pub read_only: bool,
    /// Serve a small built-in airline database (no file needed).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
    #[command(flatten)]
    #[serde(flatten)]
    /// Where to listen.
    pub serve: ServeArgs,
    #[command(flatten)]
    #[serde(flatten)]
    /// What one query may take.
    pub limits: QueryLimitArgs,
    /// Characters of a query's text table before it is cut off [default: 50000].
    #[arg(long, value_name = "CHARS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<usize>,
    /// Accept this Host header (repeatable), e.g. your Cloud Run hostname.
    #[arg(long = "allowed-host", value_name = "HOST")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Accept requests from this browser origin (repeatable); `*` accepts any.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Keep MCP sessions instead of answering statelessly.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sessions: bool,
    /// The URL clients reach this server at (e.g. https://my-svc.a.run.app), named as the
    /// resource in /.well-known/oauth-protected-resource when a token is set [default: from each
    /// request's Host and X-Forwarded-Proto].
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

impl McpServeArgs {
    /// Merges defaults, the config file, `PORT`, `SQLRFT_MCP_*` and these flags, and checks
    /// the result.
    pub fn resolve(&self) -> anyhow::Result<McpConfig> {
        let mut flags = self.clone();
        flags.db = flags.db.or(flags.db_path.take());
        let config = sqlrft_core::config::load_service(
            "mcp",
            self.serve.config.as_deref(),
            &flags,
            McpConfig::validate,
        )?;
        if config.transport == Transport::Stdio {
            self.refuse_http_flags()?;
        }
        Ok(config)
    }

    /// Over stdio there is no socket and no HTTP request: a flag that only shapes those would
    /// be silently ignored, so it is refused. (The same settings in sqlrft.toml or `SQLRFT_MCP_*`
    /// are ignored: they may be there for an HTTP server started from the same place.)
    fn refuse_http_flags(&self) -> anyhow::Result<()> {
        let serve = &self.serve;
        let given = [
            ("--host", serve.host.is_some()),
            ("--port", serve.port.is_some()),
            ("--token", serve.token.is_some()),
            ("--print-url-to", serve.print_url_to.is_some()),
            ("--allowed-host", !self.allowed_hosts.is_empty()),
            ("--allowed-origin", !self.allowed_origins.is_empty()),
            ("--sessions", self.sessions),
            ("--public-url", self.public_url.is_some()),
        ];
        let given: Vec<&str> = given
            .iter()
            .filter(|(_, set)| *set)
            .map(|(flag, _)| *flag)
            .collect();
        if given.is_empty() {
            return Ok(());
        }
        let (verb, pronoun) = if given.len() == 1 {
            ("applies", "it")
        } else {
            ("apply", "them")
        };
        anyhow::bail!(
            "{} only {verb} to `--transport http`: over stdio the MCP host that starts sqlrft \
             talks to it through stdin and stdout, with no socket, address or bearer token. Drop \
             {pronoun}, or serve over HTTP instead",
            given.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: McpServeArgs,
    }

    fn parse(line: &[&str]) -> McpServeArgs {
        Cli::try_parse_from(std::iter::once("sqlrft-mcp-serve").chain(line.iter().copied()))
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .args
    }

    #[test]
    fn a_motherduck_command_line_means_the_same() {
        let config = parse(&[
            "--db-path",
            "data/sandbox.duckdb",
            "--read-only",
            "--max-rows",
            "1024",
            "--max-chars",
            "20000",
            "--query-timeout",
            "7",
            "--port",
            "0",
        ])
        .resolve()
        .unwrap();
        assert_eq!(config.db, Some(PathBuf::from("data/sandbox.duckdb")));
        assert_eq!(config.max_rows, 1024);
        assert_eq!(config.max_chars, 20_000);
        assert_eq!(config.query_timeout_secs, 7.0);
        assert_eq!(config.port, 0);
        assert_eq!(config.pool_options().limits.timeout, Duration::from_secs(7));
    }

    #[test]
    fn the_old_spellings_still_parse() {
        let config = parse(&["db.duckdb", "--timeout", "3", "--connections", "2"])
            .resolve()
            .unwrap();
        assert_eq!(config.db, Some(PathBuf::from("db.duckdb")));
        assert_eq!((config.query_timeout_secs, config.connections), (3.0, 2));
    }

    #[test]
    fn a_file_and_a_path_flag_conflict() {
        let err = Cli::try_parse_from(["x", "a.duckdb", "--db-path", "b.duckdb"])
            .err()
            .expect("two databases are refused");
        assert!(err.to_string().contains("--db-path"), "{err}");
    }

    #[test]
    fn the_transport_is_http_unless_stdio_is_asked_for() {
        let config = |line: &[&str]| parse(line).resolve().unwrap().transport;
        assert_eq!(config(&["--demo"]), Transport::Http);
        // motherduck's name for streamable HTTP.
        assert_eq!(
            config(&["--demo", "--transport", "stream"]),
            Transport::Http
        );
        assert_eq!(
            config(&["--demo", "--transport", "stdio"]),
            Transport::Stdio
        );
        let err = Cli::try_parse_from(["x", "--demo", "--transport", "sse"])
            .err()
            .expect("sse is not served");
        assert!(err.to_string().contains("stdio"), "{err}");
    }

    #[test]
    fn http_flags_are_refused_over_stdio_and_named() {
        let refused = |line: &[&str]| parse(line).resolve().unwrap_err().to_string();
        let err = refused(&[
            "--demo",
            "--transport",
            "stdio",
            "--port",
            "1",
            "--sessions",
        ]);
        assert!(
            err.starts_with("--port, --sessions only apply to `--transport http`"),
            "{err}"
        );
        let err = refused(&["--demo", "--transport", "stdio", "--token", "t"]);
        assert!(err.starts_with("--token only applies"), "{err}");
        // Limits are not HTTP's: they hold over stdio.
        let config = parse(&["--demo", "--transport", "stdio", "--max-rows", "3"])
            .resolve()
            .unwrap();
        assert_eq!(config.max_rows, 3);
    }

    #[test]
    fn impossible_limits_are_refused_with_the_fix() {
        let refused = |line: &[&str]| parse(line).resolve().unwrap_err().to_string();
        let err = refused(&["--demo", "--query-timeout", "-1"]);
        assert!(err.contains("--query-timeout 10"), "{err}");
        assert!(refused(&["--demo", "--max-rows", "0"]).contains("max rows is 0"));
        let err = refused(&["--demo", "--public-url", "my-svc.a.run.app"]);
        assert!(err.contains("not an http(s) URL"), "{err}");
    }

    #[test]
    fn token_help_suggests_the_environment_variable() {
        let mut command = <Cli as clap::CommandFactory>::command();
        let help = command.render_long_help().to_string();
        assert!(help.contains("SQLRFT_MCP_TOKEN"), "{help}");
        assert!(help.contains("--db-path"), "{help}");
        assert!(help.contains("--transport"), "{help}");
    }
}
