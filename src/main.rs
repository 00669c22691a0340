//! The `srlm` command line: a thin shell over the library; each subcommand lives in `cli/`.

mod alloc_cache;
mod cli;
mod process_setup;

#[global_allocator]
static ALLOCATOR: alloc_cache::ReusingAllocator = alloc_cache::ReusingAllocator;

use clap::Parser;

fn main() -> std::process::ExitCode {
    process_setup::candle_elementwise_on_one_thread();
    process_setup::keep_freed_blocks();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<srlm::train::resume::Interrupted>().is_some() => {
            eprintln!("{}", cli::error_text(&e));
            std::process::ExitCode::from(srlm::train::resume::INTERRUPTED_EXIT_STATUS)
        }
        Err(e) => {
            eprintln!("error: {}", cli::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
