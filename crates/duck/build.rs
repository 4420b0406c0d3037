//! No build steps: this script exists so the pinned `[build-dependencies]` (see Cargo.toml)
//! take part in feature resolution.
fn main() {}
