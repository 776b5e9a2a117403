//! The `postie` binary: its command line to [`postie_cli::run`].

fn main() {
    std::process::exit(postie_cli::run(std::env::args_os().collect()));
}
