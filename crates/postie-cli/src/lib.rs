//! The `postie` command: a thin layer over the `postie` library. The
//! binary calls [`run`] with its command line; so does the Python package,
//! whose `postie` command is this one.

mod cli;
mod cmd;
mod output;
mod wording;

use std::ffi::OsString;
use std::io::Write;

use clap::{CommandFactory, Parser};
use postie::paths::Paths;

use cli::{Cli, Command};
use output::{Style, exit};

/// Run the `postie` command line `argv` (the program name first) and return
/// its exit status (sysexits.h). A panic is caught and reported as 70
/// (internal software error); stdout is flushed before returning. The
/// library's diagnostics go to stderr (see [`run_embedded`]).
pub fn run(argv: Vec<OsString>) -> i32 {
    run_with(argv, true)
}

/// [`run`] inside a program that has its own logging (the Python package's
/// `postie.login()`): no subscriber of the command's own is installed, so
/// the library's diagnostics go wherever the program sends them.
pub fn run_embedded(argv: Vec<OsString>) -> i32 {
    run_with(argv, false)
}

fn run_with(argv: Vec<OsString>, own_logging: bool) -> i32 {
    // A broken pipe (`postie account list | head`) is not an error.
    let code = match std::panic::catch_unwind(move || real_main(argv, own_logging)) {
        Ok(code) => code,
        Err(_) => exit::SOFTWARE,
    };
    let _ = std::io::stdout().flush();
    code
}

/// Diagnostics of the library (the relay's and the delivery workers' in
/// particular) on stderr: warnings and errors by default, what the relay
/// does at `info`; `POSTIE_LOG` (an EnvFilter, e.g. `postie=debug`) decides
/// otherwise. The library never logs a secret at any level.
fn init_logging(cli: &Cli, style: Style) {
    let default = match (&cli.command, cli.verbose) {
        (_, v) if v > 1 => "debug",
        (Command::Relay(_), _)
        | (Command::Queue(_), _)
        | (Command::Bulk(_), _)
        | (Command::Sandbox(_), _) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSTIE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("postie={default},postie_cli={default}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(style.color())
        .with_target(false)
        .try_init();
}

/// `postie man`: postie(1), a command's page (whose name postie(1) lists
/// as postie-send(1) and so on), or every page into a directory.
fn man(command: &[String], dir: Option<&std::path::Path>) -> i32 {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    if let Some(dir) = dir {
        return match std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(cmd, dir))
        {
            Ok(()) => {
                eprintln!("man pages written to {}", dir.display());
                exit::OK
            }
            Err(e) => {
                eprintln!(
                    "error: cannot write the man pages to {}: {e}",
                    dir.display()
                );
                exit::CANTCREAT
            }
        };
    }
    let mut page = cmd;
    for (i, word) in command.iter().enumerate() {
        let Some(sub) = page.find_subcommand(word).cloned() else {
            let known: Vec<&str> = page.get_subcommands().map(|c| c.get_name()).collect();
            let parent = ["postie"]
                .into_iter()
                .chain(command[..i].iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!(
                "error: `{parent}` has no command '{word}' (commands: {})",
                known.join(", ")
            );
            return exit::USAGE;
        };
        page = sub;
    }
    let man = clap_mangen::Man::new(page).source(format!("postie {}", env!("CARGO_PKG_VERSION")));
    match man.render(&mut std::io::stdout()) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: cannot write the man page: {e}");
            exit::IOERR
        }
    }
}

/// `postie completions SHELL`: the shell code that asks postie itself what
/// to complete (`COMPLETE=SHELL postie -- WORDS`), so account names come
/// from the config file of the moment.
fn completions(shell: clap_complete::Shell) -> i32 {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let Some(completer) = shells.completer(&name) else {
        eprintln!("error: no completion support for {name}");
        return exit::USAGE;
    };
    let mut out = std::io::stdout().lock();
    match completer.write_registration("COMPLETE", "postie", "postie", "postie", &mut out) {
        Ok(()) => exit::OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: cannot write the completions: {e}");
            exit::IOERR
        }
    }
}

fn real_main(mut argv: Vec<OsString>, own_logging: bool) -> i32 {
    // The shell asking what to complete (`COMPLETE=bash postie -- ...`):
    // answered, and the command ends here.
    match clap_complete::CompleteEnv::with_factory(Cli::command).try_complete(argv.clone(), None) {
        Ok(true) => return exit::OK,
        Ok(false) => {}
        Err(e) => {
            eprintln!("error: cannot write the completions: {e}");
            return exit::IOERR;
        }
    }
    // Called as `sendmail` (a symlink): the whole command line is sendmail's.
    let called_as = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let sendmail = if called_as == "sendmail" {
        argv.insert(1, "sendmail".into());
        argv.insert(2, "--".into());
        true
    } else if argv.get(1).is_some_and(|a| a == "sendmail") {
        // sendmail's options (-v, -t, -oi ...) are not postie's.
        argv.insert(2, "--".into());
        true
    } else {
        false
    };
    // Before any error or explanation is made: the library's actions are
    // said as `postie` commands (and sendmail's flags, as sendmail).
    postie::explain::set_wording(Box::new(wording::Commands { sendmail }));
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
            let _ = e.print();
            return code;
        }
    };
    let style = Style::new(cli.color);
    if own_logging {
        init_logging(&cli, style);
    }
    match cli.command {
        Command::Completions { shell } => return completions(shell),
        Command::Man { command, dir } => return man(&command, dir.as_deref()),
        _ => {}
    }
    let paths = match Paths::resolve(cli.config.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            output::print_error(&style, &e, &Default::default());
            return output::exit_code(e.kind());
        }
    };
    let g = cmd::Global {
        paths,
        verbose: cli.verbose,
        style,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::SOFTWARE;
        }
    };
    let code = match cli.command {
        Command::Send(args) => rt.block_on(cmd::send::run(&g, *args)),
        Command::Account(c) => cmd::account::run(&g, c),
        Command::Login(a) => rt.block_on(cmd::login::login(&g, a)),
        Command::Doctor(a) => rt.block_on(cmd::doctor::run(&g, a)),
        Command::Demo(a) => rt.block_on(cmd::demo::run(&g, a)),
        Command::Token { account, json } => rt.block_on(cmd::login::token(&g, account, json)),
        Command::Logout { account } => rt.block_on(cmd::login::logout(&g, account)),
        Command::Relay(a) => {
            // The relay serves many clients and delivers at once: all cores.
            match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(mt) => mt.block_on(cmd::relay::run(&g, a)),
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    exit::SOFTWARE
                }
            }
        }
        Command::Queue(c) => rt.block_on(cmd::queue::run(&g, c)),
        Command::Bulk(a) => rt.block_on(cmd::bulk::run(&g, *a)),
        Command::Sendmail(a) => rt.block_on(cmd::sendmail::run(&g, &a.args)),
        Command::Sandbox(a) => rt.block_on(cmd::sandbox::run(&g, *a)),
        Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
    };
    // Every command awaits its own work. What may still run: a value being
    // dropped on the blocking pool (`blocking::discard`, quick), and a lookup
    // the command gave up on (a DNS query past its timeout stays in the
    // resolver as long as resolv.conf says, 30 s and more): a second for the
    // first, no waiting for the second.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}
