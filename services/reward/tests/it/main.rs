//! Integration tests: the reward service on 127.0.0.1:0 over a real DuckDB file, the real MCP
//! server, the reward library's client and the Fireworks evaluator script.

mod bench;
mod client;
mod evaluator_py;
mod http;
mod support;
