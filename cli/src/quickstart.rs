//! `sqlrft quickstart`: the offline pipeline on the built-in demo schema, then its sandbox
//! served over MCP, with directions for pointing an evaluator at it.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct QuickstartCli {
    #[command(flatten)]
    pub build: sqlrft_builder::QuickstartArgs,
    /// Port for the MCP server on the sandbox.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Build the dataset and exit without serving it.
    #[arg(long)]
    pub no_serve: bool,
    /// Write the server's base URL to this file once it listens (for scripts using --port 0).
    #[arg(long)]
    pub print_url_to: Option<std::path::PathBuf>,
}

pub async fn run(args: QuickstartCli) -> anyhow::Result<()> {
    let built = sqlrft_builder::run_quickstart(&args.build).await?;
    println!("Built the demo dataset in {:.1} s:", built.seconds);
    println!("  schema    {}", built.schema.display());
    println!("  sandbox   {}", built.sandbox.display());
    println!(
        "  train     {} ({} records)",
        built.train.display(),
        built.train_records
    );
    println!(
        "  test      {} ({} records)",
        built.test.display(),
        built.test_records
    );
    println!("  report    {}", built.report.display());
    if args.no_serve {
        return Ok(());
    }
    let mut serve = sqlrft_mcp::McpServeArgs {
        db: Some(built.sandbox.clone()),
        // What it prints below is an HTTP URL, whatever SQLRFT_MCP_TRANSPORT says.
        transport: Some(sqlrft_mcp::Transport::Http),
        ..Default::default()
    };
    serve.serve.port = Some(args.port);
    serve.serve.print_url_to = args.print_url_to;
    println!();
    println!(
        "Serving the sandbox read-only over MCP at http://127.0.0.1:{}/mcp (Ctrl-C to stop).",
        args.port
    );
    println!(
        "Point the RFT tutorial's evaluate() at it:   MCP_SERVER_URL = \"http://127.0.0.1:{}\"",
        args.port
    );
    println!(
        "Or score with sqlrft:   sqlrft reward serve --mcp-url http://127.0.0.1:{}/mcp --port 8090",
        args.port
    );
    sqlrft_mcp::serve(serve).await
}
