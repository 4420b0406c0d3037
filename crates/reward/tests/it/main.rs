//! Integration tests of the reward library: the engine and both executors on a real DuckDB file
//! and the real MCP server.

mod engine;
mod executors;
mod fixture;
