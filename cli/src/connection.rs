//! Which server the client commands talk to, and with which key: flags first, then
//! `PAUSEPOINT_URL` / `PAUSEPOINT_API_KEY`, then the file `pp login` writes.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use pausepoint_client::Client;
use serde::{Deserialize, Serialize};

/// Where a client goes when nothing says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(Args, Clone)]
pub struct ConnectionArgs {
    /// The PausePoint server [default: from `pp login`, else http://127.0.0.1:8080]
    #[arg(long, env = "PAUSEPOINT_URL", value_name = "URL")]
    url: Option<String>,
    /// The API key [default: from `pp login`]
    #[arg(
        long,
        env = "PAUSEPOINT_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    key: Option<String>,
}

/// What `pp login` saves.
#[derive(Serialize, Deserialize, Default)]
pub struct Saved {
    pub url: Option<String>,
    pub api_key: Option<String>,
}

/// The file `pp login` writes: `PAUSEPOINT_CONFIG`, else `pausepoint/config.json` in the
/// user's config folder.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PAUSEPOINT_CONFIG") {
        return PathBuf::from(path);
    }
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pausepoint")
        .join("config.json")
}

fn saved() -> anyhow::Result<Saved> {
    let path = config_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid; run `pp login` again", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

impl ConnectionArgs {
    /// The client these settings describe.
    pub fn client(&self) -> anyhow::Result<Client> {
        let saved = saved()?;
        let url = self
            .url
            .clone()
            .or(saved.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let Some(key) = self
            .key
            .clone()
            .or(saved.api_key)
            .filter(|k| !k.trim().is_empty())
        else {
            bail!(
                "no API key: pass --key, set PAUSEPOINT_API_KEY, or run `pp login --url URL --key KEY` \
                 (an operator makes keys with `pp admin keys create --name NAME`; a new `pp server` prints its first key)"
            );
        };
        Ok(Client::new(&url, &key)?)
    }
}

/// `pp login`: checks the key against the server, then saves both (mode 0600).
pub async fn login(url: &str, key: &str) -> anyhow::Result<()> {
    let client = Client::new(url, key)?;
    client
        .list(None, Some(1), None)
        .await
        .context("the server did not accept this URL and key")?;
    let path = config_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&Saved {
        url: Some(client.base_url().to_owned()),
        api_key: Some(key.trim().to_owned()),
    })?;
    write_private(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    let shown: String = key.chars().take(12).collect();
    println!(
        "Saved to {}: pp now talks to {} with the key {shown}…",
        path.display(),
        client.base_url()
    );
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An older file may have been created with wider permissions.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
