//! The relay as a service: the systemd unit and launchd agent `postie relay
//! service` prints, and the readiness notifications a systemd `Type=notify`
//! unit waits for (sd_notify(3): a datagram to `$NOTIFY_SOCKET`).

use postie::error::{Error, ErrorKind};

use super::Global;
use crate::cli::ServiceManager;

/// The service definition for `manager`, running this binary with this
/// configuration.
pub fn definition(g: &Global, manager: ServiceManager) -> Result<String, Error> {
    let exe = std::env::current_exe().map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot tell where this postie binary is: {e}"),
        )
    })?;
    let exe = exe.display().to_string();
    let config = g.paths.config_file.display().to_string();
    Ok(match manager {
        ServiceManager::Systemd => systemd_unit(&exe, &config),
        ServiceManager::Launchd => launchd_plist(&exe, &config),
    })
}

fn systemd_unit(exe: &str, config: &str) -> String {
    // systemd's own quoting: a path with spaces stays one word.
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    format!(
        "[Unit]
Description=postie relay: local SMTP relay that sends with modern authentication
Documentation=man:postie-relay(1)
After=network-online.target
Wants=network-online.target

[Service]
# Ready (and units After= it started) once the relay listens.
Type=notify
NotifyAccess=main
ExecStart={} --config {} relay
# Reads the config file again: accounts, relay users, fallback_account.
ExecReload=/bin/kill -HUP $MAINPID
# Passwords the accounts take from password_env, as KEY=value lines.
EnvironmentFile=-%h/.config/postie/relay.env
Restart=on-failure
RestartSec=5s
TimeoutStopSec=40s

[Install]
WantedBy=default.target
",
        quoted(exe),
        quoted(config)
    )
}

fn launchd_plist(exe: &str, config: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>org.postie.relay</string>
  <key>ProgramArguments</key>
  <array>
    <string>{}</string>
    <string>--config</string>
    <string>{}</string>
    <string>relay</string>
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ProcessType</key>
  <string>Background</string>
  <key>StandardErrorPath</key>
  <string>/tmp/postie-relay.log</string>
</dict>
</plist>
"#,
        esc(exe),
        esc(config)
    )
}

/// Tell the service manager `state` (`READY=1`, `RELOADING=1`,
/// `STOPPING=1`) when it asked to be told (`$NOTIFY_SOCKET`); nothing
/// otherwise. Failures are logged, never fatal: the relay works without.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_notification(&path, state) {
        tracing::warn!(
            "cannot tell the service manager {state:?} at {}: {e}",
            path.to_string_lossy()
        );
    }
}

#[cfg(unix)]
fn send_notification(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    // `@name`: a Linux abstract socket.
    #[cfg(target_os = "linux")]
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
        return Ok(());
    }
    socket.send_to(state.as_bytes(), std::path::Path::new(path))?;
    let _ = bytes;
    Ok(())
}

#[cfg(not(unix))]
fn send_notification(_path: &std::ffi::OsStr, _state: &str) -> std::io::Result<()> {
    Ok(())
}
