//! Generates the rollout contract from `proto/sqlrft/v1/*.proto` with a vendored protoc: the
//! messages (with serde, so the worker can also answer in JSON) and the Rollouts service's
//! tonic client and server.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary reused from another checkout must not point there.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let rollout = root.join("sqlrft/v1/rollout.proto");
    println!("cargo:rerun-if-changed={}", rollout.display());
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    tonic_prost_build::configure()
        .type_attribute(
            ".sqlrft.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .compile_protos(&[rollout], &[root])?;
    Ok(())
}
