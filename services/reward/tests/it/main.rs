//! Integration tests: the reward service on 127.0.0.1:0 over a real DuckDB file, the real MCP
//! server, and the Fireworks evaluator script.

mod bench;
mod engine;
mod evaluator_py;
mod executors;
mod http;
mod support;
