//! Integration tests: the reward service on 127.0.0.1:0 over a real DuckDB file, the real MCP
//! server, the reward library's client, and the Fireworks evaluators (the paste-in script and
//! the Eval Protocol test).

mod bench;
mod client;
mod eval_protocol;
mod evaluator_py;
#[path = "../../../mcp/tests/it/find_python.rs"]
mod find_python;
mod http;
mod support;
