//! Opening the user's browser: `$BROWSER` (a colon-separated list of
//! commands; `%s` stands for the URL), else the platform's opener. Never
//! fatal: the URL is always shown too, for machines without a browser.

use std::process::{Command, Stdio};

/// Try to open `url`; true when a browser command could be started.
pub(crate) fn open(url: &str) -> bool {
    let mut candidates: Vec<Vec<String>> = std::env::var("BROWSER")
        .ok()
        .map(|b| {
            b.split(':')
                .map(|cmd| {
                    let mut words: Vec<String> =
                        cmd.split_whitespace().map(str::to_string).collect();
                    if words.iter().any(|w| w.contains("%s")) {
                        for w in &mut words {
                            *w = w.replace("%s", url);
                        }
                    } else if !words.is_empty() {
                        words.push(url.to_string());
                    }
                    words
                })
                .filter(|w| !w.is_empty())
                .collect()
        })
        .unwrap_or_default();
    candidates.push(platform_opener(url));
    candidates.into_iter().any(|argv| spawn(&argv))
}

fn platform_opener(url: &str) -> Vec<String> {
    let argv: &[&str] = if cfg!(target_os = "macos") {
        &["open"]
    } else if cfg!(windows) {
        // `cmd /c start` would split the URL at each '&'.
        &["rundll32", "url.dll,FileProtocolHandler"]
    } else {
        &["xdg-open"]
    };
    argv.iter()
        .map(|s| s.to_string())
        .chain([url.to_string()])
        .collect()
}

fn spawn(argv: &[String]) -> bool {
    let Some((prog, args)) = argv.split_first() else {
        return false;
    };
    match Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reap it whenever it exits; its outcome does not matter.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(e) => {
            tracing::debug!("cannot start the browser command {prog}: {e}");
            false
        }
    }
}
