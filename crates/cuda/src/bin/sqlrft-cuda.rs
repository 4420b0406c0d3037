//! `sqlrft-cuda`: the `sqlrft cuda` commands as a standalone binary, for GPU machines that get
//! only this crate's build (scripts/gpu-check.sh accepts either).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "sqlrft-cuda",
    version,
    about = "sqlrft's CUDA backend: probe, compile, check, forward"
)]
struct Cli {
    #[command(flatten)]
    args: sqlrft_cuda::CudaArgs,
}

fn main() -> std::process::ExitCode {
    match sqlrft_cuda::run_cli(Cli::parse().args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
