//! Secrets at rest. The secrets the service makes (the link-signing key, webhook secrets,
//! the audit signing key) are kept in the database only sealed (XChaCha20-Poly1305) under
//! a master key that lives in a file outside it: `pausepoint.key` beside a SQLite file
//! (or `--master-key-file`), owner-only, made on first start. A stolen database file or
//! backup then forges no link and signs no webhook. Every server of a PostgreSQL
//! deployment is given the same file; the database keeps a check value, so a server
//! started with another key file says so instead of failing later.
//!
//! A sealed value is `sealed:v1:` and the base64 of a random 24-byte nonce and the
//! ciphertext; what the secret is for (its purpose, such as the project it belongs to) is
//! bound in as associated data, so a sealed value moved to another row does not open.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 24;
/// The first line of a key file, so that a person who opens it knows what it is.
const HEADER: &str = "# PausePoint master key: keep it apart from the database and its backups; without it the database's secrets cannot be opened.";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the master key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(
        "this database's secrets were sealed with another key file than {path}; start the \
         server with the key file made with this database (--master-key-file)"
    )]
    WrongKey { path: PathBuf },
    #[error("a sealed secret ({purpose}) cannot be opened with this key file: it was changed, or sealed for something else")]
    Unopenable { purpose: String },
    #[error("cannot seal a secret")]
    Seal,
}

/// The key that seals every secret the service keeps. Never printed.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    check: String,
    path: PathBuf,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey {{ path: {:?}, key: <secret> }}", self.path)
    }
}

impl MasterKey {
    /// Reads the key file at `path`, or makes it (owner-only) when there is none. Two
    /// processes starting at once agree on one key: the file appears whole or not at all.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, SecretsError> {
        let fail = |reason: String| SecretsError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        if !path.exists() {
            create(path).map_err(|e| fail(e.to_string()))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        restrict(path, 0o600).map_err(|e| fail(e.to_string()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| fail("it holds no key".into()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(line)
            .map_err(|_| fail("it does not hold a key PausePoint made".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| fail("its key is not 32 bytes".into()))?;
        Ok(MasterKey::from_bytes(key, path))
    }

    /// A key from its bytes (for tests and tools).
    pub fn from_bytes(key: [u8; 32], path: &Path) -> MasterKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(b"pausepoint/master-key-check/v1");
        MasterKey {
            cipher: XChaCha20Poly1305::new((&key).into()),
            check: hex::encode(mac.finalize().into_bytes()),
            path: path.to_owned(),
        }
    }

    /// A value that tells this key from another without revealing it, kept in the database.
    pub fn check_value(&self) -> &str {
        &self.check
    }

    /// The error for a database whose check value is not this key's.
    pub fn wrong_key(&self) -> SecretsError {
        SecretsError::WrongKey {
            path: self.path.clone(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seals `secret` for `purpose`.
    pub fn seal(&self, purpose: &str, secret: &[u8]) -> Result<String, SecretsError> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Seal)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Opens a value sealed for `purpose`.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, SecretsError> {
        let unopenable = || SecretsError::Unopenable {
            purpose: purpose.to_owned(),
        };
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.len() > NONCE_BYTES)
            .ok_or_else(unopenable)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| unopenable())
    }
}

/// True for a value stored sealed (rather than in the clear, by an older version).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// The key file beside a SQLite database, or in the data folder for PostgreSQL.
pub fn default_key_file(database: &str) -> PathBuf {
    let sqlite = !database.starts_with("postgres://") && !database.starts_with("postgresql://");
    let path = database
        .strip_prefix("sqlite://")
        .or_else(|| database.strip_prefix("sqlite:"))
        .unwrap_or(database);
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    match Path::new(path).parent() {
        Some(dir) if sqlite => {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            dir.join("pausepoint.key")
        }
        _ => crate::config::default_database().with_file_name("pausepoint.key"),
    }
}

/// Writes a new key to `path` whole: to a file of its own first, then linked into place,
/// which fails if another process got there first (its key is then the one).
fn create(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            restrict(dir, 0o700)?;
        }
    }
    let key: [u8; 32] = rand::random();
    // Unique per attempt: threads of one process may race here too.
    let staging = path.with_extension(format!("key.{:016x}", rand::random::<u64>()));
    {
        let mut file = owner_only_file(&staging)?;
        writeln!(file, "{HEADER}\n{}", URL_SAFE_NO_PAD.encode(key))?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&staging, path);
    std::fs::remove_file(&staging)?;
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A new file only its owner can read.
pub fn owner_only_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Gives `path` the Unix permission bits `mode` (nothing elsewhere).
pub fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if current != mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_purpose() {
        let key = MasterKey::from_bytes([1; 32], Path::new("k"));
        let sealed = key.seal("webhook-secret/p1", b"whsec_abc").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(
            key.open("webhook-secret/p1", &sealed).unwrap(),
            b"whsec_abc"
        );
        assert!(
            key.open("webhook-secret/p2", &sealed).is_err(),
            "another purpose"
        );
        let other = MasterKey::from_bytes([2; 32], Path::new("k"));
        assert!(
            other.open("webhook-secret/p1", &sealed).is_err(),
            "another key"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open("webhook-secret/p1", &tampered).is_err());
        assert_ne!(
            key.seal("x", b"same").unwrap(),
            key.seal("x", b"same").unwrap(),
            "a fresh nonce each time"
        );
        assert_ne!(key.check_value(), other.check_value());
    }

    #[test]
    fn the_key_file_is_made_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("pausepoint.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        let second = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(first.check_value(), second.check_value());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dir_mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dir_mode, 0o700);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(MasterKey::load_or_create(&path).is_err());
    }

    #[test]
    fn servers_starting_at_once_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pausepoint.key");
        let checks: Vec<String> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| MasterKey::load_or_create(&path).unwrap()))
                .collect();
            starts
                .into_iter()
                .map(|s| s.join().unwrap().check_value().to_owned())
                .collect()
        });
        assert!(checks.iter().all(|c| *c == checks[0]), "{checks:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no staging file is left behind");
    }

    #[test]
    fn the_default_key_file_sits_beside_a_sqlite_database() {
        assert_eq!(
            default_key_file("/var/lib/pp/pausepoint.db"),
            Path::new("/var/lib/pp/pausepoint.key")
        );
        assert_eq!(
            default_key_file("sqlite:///var/lib/pp/x.db?mode=rwc"),
            Path::new("/var/lib/pp/pausepoint.key")
        );
        assert_eq!(default_key_file("x.db"), Path::new("./pausepoint.key"));
        assert!(default_key_file("postgres://db/pp").ends_with("pausepoint/pausepoint.key"));
    }
}
