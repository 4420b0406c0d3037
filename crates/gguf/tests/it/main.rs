//! Integration tests of sqlrft-gguf on GGUF files written here byte by byte.
mod import;
mod reader;
pub mod writer;
