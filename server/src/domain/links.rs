//! Response links: `{public_url}/r/{token}`, where the token is 48 URL-safe characters
//! carrying the pause id and the link's expiry under an HMAC-SHA256 tag (50 for the
//! approvers after the first, whose token also names the approver, under its own domain
//! tag, so that no token of one form reads as the other). The key is made
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
/// Separates this use of the key from any other: links to the first approver...
const DOMAIN: &[u8] = b"pausepoint/link/v1";
/// ...and links that name their approver.
const APPROVER_DOMAIN: &[u8] = b"pausepoint/link/v2/approver";
const ID_BYTES: usize = 16;
const EXPIRY_BYTES: usize = 4;
const APPROVER_BYTES: usize = 1;
/// 128 bits of HMAC-SHA256: far beyond guessing, and short enough for an SMS.
const TAG_BYTES: usize = 16;

/// Who a link lets answer: one approver of one pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTarget {
    pub pause_id: PauseId,
    /// The approver's index in the pause's `approvers`; 0 is its `recipient`.
    pub approver: u32,
}

/// A link to a pause's first approver, its `recipient`.
impl From<PauseId> for LinkTarget {
    fn from(pause_id: PauseId) -> LinkTarget {
        LinkTarget {
            pause_id,
            approver: 0,
        }
    }
}

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

    /// The token of a link for `target` that works until `expires`.
    pub fn token(&self, target: LinkTarget, expires: Timestamp) -> String {
        let seconds = u32::try_from(expires.as_second().max(0)).unwrap_or(u32::MAX);
        let mut signed = Vec::with_capacity(ID_BYTES + EXPIRY_BYTES + APPROVER_BYTES);
        signed.extend_from_slice(target.pause_id.as_uuid().as_bytes());
        signed.extend_from_slice(&seconds.to_be_bytes());
        let domain = match u8::try_from(target.approver) {
            Ok(0) => DOMAIN,
            Ok(approver) => {
                signed.push(approver);
                APPROVER_DOMAIN
            }
            // Never more than 20 approvers; a number past a byte has no link.
            Err(_) => return String::new(),
        };
        let tag = self.mac(domain, &signed).finalize().into_bytes();
        signed.extend_from_slice(&tag[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(signed)
    }

    /// The token for an approver of a pause: valid until a week after the pause's own
    /// deadline.
    pub fn token_for(&self, target: LinkTarget, pause_expires_at: Timestamp) -> String {
        let expires = pause_expires_at
            .checked_add(LINK_GRACE)
            .unwrap_or(pause_expires_at);
        self.token(target, expires)
    }

    /// The approver a token lets answer at `now`. The tag is checked (in constant time)
    /// before anything else is believed, so a forged token learns nothing, not even its
    /// expiry.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<LinkTarget, LinkError> {
        let (domain, signed_bytes) = match token.len() {
            48 => (DOMAIN, ID_BYTES + EXPIRY_BYTES),
            50 => (APPROVER_DOMAIN, ID_BYTES + EXPIRY_BYTES + APPROVER_BYTES),
            _ => return Err(LinkError::Invalid),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| LinkError::Invalid)?;
        // Only the one canonical spelling of each token is accepted.
        if bytes.len() != signed_bytes + TAG_BYTES || URL_SAFE_NO_PAD.encode(&bytes) != token {
            return Err(LinkError::Invalid);
        }
        let (signed, tag) = bytes.split_at(signed_bytes);
        self.mac(domain, signed)
            .verify_truncated_left(tag)
            .map_err(|_| LinkError::Invalid)?;
        let mut expiry = [0u8; EXPIRY_BYTES];
        expiry.copy_from_slice(&signed[ID_BYTES..ID_BYTES + EXPIRY_BYTES]);
        if i64::from(u32::from_be_bytes(expiry)) <= now.as_second() {
            return Err(LinkError::Expired);
        }
        let approver = signed.get(ID_BYTES + EXPIRY_BYTES).copied().unwrap_or(0);
        let pause_id = Uuid::from_slice(&signed[..ID_BYTES])
            .map(PauseId::from)
            .map_err(|_| LinkError::Invalid)?;
        Ok(LinkTarget {
            pause_id,
            approver: u32::from(approver),
        })
    }

    fn mac(&self, domain: &[u8], message: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(domain);
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
        for (approver, length) in [(0, 48), (1, 50), (19, 50)] {
            let target = LinkTarget {
                pause_id: id,
                approver,
            };
            let token = links.token(target, now() + SignedDuration::from_secs(60));
            assert_eq!(token.len(), length);
            assert!(token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            assert_eq!(links.verify(&token, now()), Ok(target));
            assert_eq!(
                links.verify(&token, now() + SignedDuration::from_secs(60)),
                Err(LinkError::Expired)
            );
        }
    }

    #[test]
    fn a_first_approver_token_with_an_approver_byte_added_is_invalid() {
        let links = Links::from_key([7; 32]);
        let target = LinkTarget {
            pause_id: PauseId::new(),
            approver: 0,
        };
        let token = links.token(target, now() + SignedDuration::from_hours(1));
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        // Move the tag one byte on and put approver 1 where it was: the same tag under
        // the other form's domain does not verify.
        let tag = bytes.split_off(ID_BYTES + EXPIRY_BYTES);
        bytes.push(1);
        bytes.extend(tag);
        let forged = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(forged.len(), 50);
        assert_eq!(links.verify(&forged, now()), Err(LinkError::Invalid));
    }

    #[test]
    fn any_changed_character_is_invalid() {
        let links = Links::from_key([7; 32]);
        let token = links.token(
            LinkTarget {
                pause_id: PauseId::new(),
                approver: 3,
            },
            now() + SignedDuration::from_hours(1),
        );
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
        assert_eq!(links.verify(&token[..49], now()), Err(LinkError::Invalid));
        assert_eq!(links.verify(&token[..48], now()), Err(LinkError::Invalid));
        assert_eq!(links.verify("", now()), Err(LinkError::Invalid));
        let other_server = Links::from_key([8; 32]);
        assert_eq!(other_server.verify(&token, now()), Err(LinkError::Invalid));
    }
}
