//! Generates the rollout contract types from `proto/sqlrft/v1/*.proto` with a vendored protoc.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary reused from another checkout must not point there.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let rollout = root.join("sqlrft/v1/rollout.proto");
    println!("cargo:rerun-if-changed={}", rollout.display());
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    config.compile_protos(&[rollout], &[root])?;
    Ok(())
}
