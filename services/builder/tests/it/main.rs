//! Integration tests of the dataset builder: real DuckDB files, the real pipeline, and an
//! OpenAI-compatible stub on 127.0.0.1 for the `--llm` paths.

mod bench;
mod llm;
mod pipeline;
mod resume;
mod schema;
mod support;
