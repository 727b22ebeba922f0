//! `castellan`: the admin CLI (see `daemon::cli`).
use clap::Parser;

fn main() {
    let cli = daemon::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    std::process::exit(rt.block_on(daemon::cli::run(cli)));
}
