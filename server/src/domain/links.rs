//! Response links: `{public_url}/r/{token}`, where the token is 48 URL-safe characters
//! carrying the pause id and the link's expiry under an HMAC-SHA256 tag. The key is made
//! on first start and kept in the database sealed under the master key (see
//! [`crate::secrets`]), so every server sharing the database accepts the same links while
//! the database alone forges none. Only whoever received the link can answer: the API
//! never returns one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use sha2::Sha256;
use uuid::Uuid;

use crate::ids::PauseId;

use crate::store::settings::{LINK_SIGNING_KEY, LINK_SIGNING_KEY_PURPOSE};
use crate::store::{Store, StoreError};

/// How long after a pause's deadline its link still shows what became of it.
pub const LINK_GRACE: SignedDuration = SignedDuration::from_hours(7 * 24);
/// Separates this use of the key from any other.
const DOMAIN: &[u8] = b"pausepoint/link/v1";
const ID_BYTES: usize = 16;
const EXPIRY_BYTES: usize = 4;
/// 128 bits of HMAC-SHA256: far beyond guessing, and short enough for an SMS.
const TAG_BYTES: usize = 16;
const TOKEN_BYTES: usize = ID_BYTES + EXPIRY_BYTES + TAG_BYTES;

/// Why a token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Malformed, truncated, forged, or signed by another server's key.
    #[error("the link is not valid")]
    Invalid,
    /// Genuine, but past its expiry.
    #[error("the link has expired")]
    Expired,
}

/// Signs and checks response links.
#[derive(Clone)]
pub struct Links {
    key: [u8; 32],
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Links { key: <secret> }")
    }
}

impl Links {
    /// The signer of this database, making its key on first use.
    pub async fn load(store: &Store) -> Result<Links, StoreError> {
        let secrets = store.secrets();
        let fresh = secrets.seal(
            LINK_SIGNING_KEY_PURPOSE,
            hex::encode(rand::random::<[u8; 32]>()).as_bytes(),
        )?;
        let stored = store.setting_or_init(LINK_SIGNING_KEY, &fresh).await?;
        let opened = secrets.open(LINK_SIGNING_KEY_PURPOSE, &stored)?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(&opened, &mut key).map_err(|e| StoreError::Corrupt {
            table: "settings",
            detail: format!("{LINK_SIGNING_KEY}: {e}"),
        })?;
        Ok(Links { key })
    }

    /// A signer with a given key (for tests and tools).
    pub fn from_key(key: [u8; 32]) -> Links {
        Links { key }
    }

    /// The token of a link to `pause_id` that works until `expires`.
    pub fn token(&self, pause_id: PauseId, expires: Timestamp) -> String {
        let seconds = u32::try_from(expires.as_second().max(0)).unwrap_or(u32::MAX);
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[..ID_BYTES].copy_from_slice(pause_id.as_uuid().as_bytes());
        bytes[ID_BYTES..ID_BYTES + EXPIRY_BYTES].copy_from_slice(&seconds.to_be_bytes());
        let tag = self
            .mac(&bytes[..ID_BYTES + EXPIRY_BYTES])
            .finalize()
            .into_bytes();
        bytes[ID_BYTES + EXPIRY_BYTES..].copy_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The token for a pause: valid until a week after the pause's own deadline.
    pub fn token_for(&self, pause_id: PauseId, pause_expires_at: Timestamp) -> String {
        let expires = pause_expires_at
            .checked_add(LINK_GRACE)
            .unwrap_or(pause_expires_at);
        self.token(pause_id, expires)
    }

    /// The pause a token opens at `now`. The tag is checked (in constant time) before
    /// anything else is believed, so a forged token learns nothing, not even its expiry.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<PauseId, LinkError> {
        if token.len() != 48 {
            return Err(LinkError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| LinkError::Invalid)?;
        // Only the one canonical spelling of each token is accepted.
        if bytes.len() != TOKEN_BYTES || URL_SAFE_NO_PAD.encode(&bytes) != token {
            return Err(LinkError::Invalid);
        }
        let (signed, tag) = bytes.split_at(ID_BYTES + EXPIRY_BYTES);
        self.mac(signed)
            .verify_truncated_left(tag)
            .map_err(|_| LinkError::Invalid)?;
        let mut expiry = [0u8; EXPIRY_BYTES];
        expiry.copy_from_slice(&signed[ID_BYTES..]);
        if i64::from(u32::from_be_bytes(expiry)) <= now.as_second() {
            return Err(LinkError::Expired);
        }
        Uuid::from_slice(&signed[..ID_BYTES])
            .map(PauseId::from)
            .map_err(|_| LinkError::Invalid)
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(DOMAIN);
        mac.update(message);
        mac
    }
}

/// The full link a human receives.
pub fn link(public_url: &str, token: &str) -> String {
    format!("{}/r/{token}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_token_opens_its_pause_until_it_expires() {
        let links = Links::from_key([7; 32]);
        let id = PauseId::new();
        let token = links.token(id, now() + SignedDuration::from_secs(60));
        assert_eq!(token.len(), 48);
        assert!(token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(links.verify(&token, now()), Ok(id));
        assert_eq!(
            links.verify(&token, now() + SignedDuration::from_secs(60)),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn any_changed_character_is_invalid() {
        let links = Links::from_key([7; 32]);
        let token = links.token(PauseId::new(), now() + SignedDuration::from_hours(1));
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..token.len() {
            for c in alphabet
                .chars()
                .filter(|&c| Some(c) != token.chars().nth(i))
            {
                let mut forged: Vec<char> = token.chars().collect();
                forged[i] = c;
                let forged: String = forged.into_iter().collect();
                assert_eq!(
                    links.verify(&forged, now()),
                    Err(LinkError::Invalid),
                    "{forged}"
                );
            }
        }
        assert_eq!(links.verify(&token[..47], now()), Err(LinkError::Invalid));
        assert_eq!(links.verify("", now()), Err(LinkError::Invalid));
        let other_server = Links::from_key([8; 32]);
        assert_eq!(other_server.verify(&token, now()), Err(LinkError::Invalid));
    }
}
