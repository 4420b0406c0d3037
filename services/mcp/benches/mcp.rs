//! `cargo bench -p sqlrft-mcp --bench mcp -- --db openflights.duckdb [--peer URL]`: the same
//! measurement as `sqlrft bench mcp`, without building the whole `sqlrft` binary.

use clap::Parser;
use sqlrft_mcp::bench::{McpBenchArgs, run_bench};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: McpBenchArgs,
    /// Accepted and ignored: `cargo bench` passes it to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The same allocator as the `sqlrft` binary, so both measure the same server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Runtime::new()?
        .block_on(run_bench(cli.args))
        .map(drop)
}
