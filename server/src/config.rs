//! What `pp server` is told: where the data lives, where to listen, how it is reached.

use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

/// The default address: loopback only, so a fresh server is not exposed by accident.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The server's settings. Holds no secrets yet; when it does, Debug must hide them.
#[derive(Debug, Clone)]
pub struct Config {
    /// A SQLite file path or a database URL.
    pub database: String,
    pub bind: SocketAddr,
    /// The address humans reach this server at, for the links sent to them. Defaults to
    /// `http://{bind}`.
    pub public_url: Option<Url>,
    /// Allow webhook and Slack targets on loopback or private networks.
    pub allow_private_network: bool,
}

impl Config {
    /// Settings for a server on `database` and `bind`, with everything else at its default.
    pub fn new(database: impl Into<String>, bind: SocketAddr) -> Config {
        Config {
            database: database.into(),
            bind,
            public_url: None,
            allow_private_network: false,
        }
    }
}

/// The SQLite file used when no database is given: `pausepoint.db` in the user's data
/// folder (`~/.local/share/pausepoint` on Linux).
pub fn default_database() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pausepoint")
        .join("pausepoint.db")
}
