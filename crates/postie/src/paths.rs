//! Where postie keeps its files: the config file (`--config`,
//! `POSTIE_CONFIG`, else `$XDG_CONFIG_HOME/postie/config.toml`) and the data
//! directory (`$XDG_DATA_HOME/postie`: the encrypted secret file, token
//! locks, the outbox, the sandbox).

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind};
use crate::wording::{Setting, say_setting};

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "POSTIE_CONFIG";

/// Where postie keeps its files (XDG base directories on Linux).
#[derive(Clone, Debug)]
pub struct Paths {
    /// The config file.
    pub config_file: PathBuf,
    /// Directory for data postie writes (the encrypted secret file).
    pub data_dir: PathBuf,
}

impl Paths {
    /// Resolve paths: an explicit config path first, then `POSTIE_CONFIG`,
    /// then the platform's config directory.
    pub fn resolve(explicit_config: Option<&Path>) -> Result<Paths, Error> {
        let dirs = directories::ProjectDirs::from("", "", "postie");
        let config_file = match explicit_config {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
                Some(p) => PathBuf::from(p),
                None => dirs
                    .as_ref()
                    .map(|d| d.config_dir().join("config.toml"))
                    .ok_or_else(no_home)?,
            },
        };
        let data_dir = dirs
            .as_ref()
            .map(|d| d.data_dir().to_path_buf())
            .ok_or_else(no_home)?;
        Ok(Paths {
            config_file,
            data_dir,
        })
    }
}

fn no_home() -> Error {
    Error::new(
        ErrorKind::Config,
        format!(
            "cannot find a home directory for postie's files: set HOME (or XDG_CONFIG_HOME and \
             XDG_DATA_HOME), or give {}",
            say_setting(Setting::ConfigFile)
        ),
    )
}

/// postie's data directory (`$XDG_DATA_HOME/postie` on Linux), when a home
/// directory is known.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "postie").map(|d| d.data_dir().to_path_buf())
}

/// Where `postie sandbox` keeps its files by default: `DATA_DIR/sandbox`.
pub fn default_sandbox_dir() -> Option<PathBuf> {
    default_data_dir().map(|d| d.join("sandbox"))
}

/// The CA certificate of the sandbox whose data directory is `sandbox_dir`
/// (the sandbox makes it on first start; accounts of the `sandbox` provider
/// trust it).
pub fn sandbox_ca_path(sandbox_dir: &Path) -> PathBuf {
    sandbox_dir.join("tls").join("ca.pem")
}
