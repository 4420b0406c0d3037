//! Integration tests of `sqlrft distill`, `distill merge` and `publish dataset` against an
//! OpenAI-compatible teacher stub and a Hugging Face Hub stub, both over real HTTP, on the
//! hand-written Gretel-shaped fixture.

mod distill;
mod publish;
mod resume;
mod shards;

mod support;

use clap::Parser;
use sqlrft_distill::DistillArgs;

pub use support::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: DistillArgs,
}

/// `DistillArgs` parsed from flags, as the CLI would.
pub fn distill_args(flags: &[String]) -> DistillArgs {
    let argv = std::iter::once("distill".to_string()).chain(flags.iter().cloned());
    Cli::try_parse_from(argv).unwrap().args
}
