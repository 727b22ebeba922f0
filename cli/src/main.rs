//! `castellan`: the admin CLI (see the `cli` crate).
use clap::Parser;

fn main() {
    let args = cli::args::Cli::parse();
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
    std::process::exit(rt.block_on(cli::run(args)));
}
