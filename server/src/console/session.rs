//! Signing in to the console: an API key exchanged for a session cookie, the CSRF token
//! every form carries, the Origin check on every POST, and the cap on failed sign-ins.
//!
//! The key is never kept by the browser: it is checked once and the browser gets a random
//! session token (only its SHA-256 is stored). A session ends when the operator signs out,
//! after [`SESSION_LIFETIME`], or as soon as its key is revoked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::extract::Caller;
use crate::http::AppState;
use crate::store::sessions::SessionRecord;

/// How long a session lasts from sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The session cookie.
pub const SESSION_COOKIE: &str = "pp_console";
/// The cookie that ties the sign-in form to the browser that loaded it.
pub const SIGN_IN_COOKIE: &str = "pp_console_sign_in";
/// Where the console lives; its cookies are sent nowhere else.
pub const BASE: &str = "/console";

/// A random token, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The CSRF token of the session whose token is `token`: a MAC only the holder of the
/// session cookie can compute, so a page on another site cannot fill it in.
fn csrf_of(token: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(b"pausepoint console csrf");
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A cookie's value from the request, if sent.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value for a console cookie: HttpOnly, SameSite=Strict, Secure when the
/// console is served over https, sent only under `/console`.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{name}={value}; Path={BASE}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A signed-in operator: the session, and the key it signed in with, acting as that key.
pub struct Operator {
    pub caller: Caller,
    pub project: String,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
    token_hash: String,
}

impl Operator {
    /// Whether the session is still live (not signed out, expired, or its key revoked).
    pub async fn still_signed_in(&self, state: &AppState) -> bool {
        matches!(
            state
                .app
                .store()
                .live_session(&self.token_hash, Timestamp::now())
                .await,
            Ok(Some(_))
        )
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        same_token(&self.csrf, presented)
    }
}

/// What happens to a request without a live session: back to the sign-in page, which
/// returns to the page asked for (a GET's) once signed in.
pub struct SignedOut<'a>(&'a Parts);

impl IntoResponse for SignedOut<'_> {
    fn into_response(self) -> Response {
        let parts = self.0;
        let asked = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|_| parts.method == axum::http::Method::GET)
            .and_then(safe_next);
        match asked {
            Some(next) => {
                let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
                Redirect::to(&format!("{BASE}/sign-in?next={next}")).into_response()
            }
            None => Redirect::to(&format!("{BASE}/sign-in")).into_response(),
        }
    }
}

/// `next` when it is a page of this console to return to after signing in: a path under
/// `/console/` (never another host, nor sign-in or sign-out themselves).
pub fn safe_next(next: &str) -> Option<&str> {
    let page = next.strip_prefix("/console/")?;
    let fine = !page.starts_with('/')
        && !next.contains(['\\', '\r', '\n', '\t'])
        && !next.contains("//")
        && !page.starts_with("sign-in")
        && !page.starts_with("sign-out")
        && !page.starts_with("pauses/live");
    fine.then_some(next)
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Operator, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(SignedOut(parts).into_response());
        };
        let hash = token_hash(token);
        let store = state.app.store();
        let session = store
            .live_session(&hash, Timestamp::now())
            .await
            .map_err(|e| super::pages::failure(&e))?;
        let Some(SessionRecord { key_id, .. }) = session else {
            return Err(SignedOut(parts).into_response());
        };
        let key = store
            .read(move |conn| Box::pin(conn.key(key_id)))
            .await
            .map_err(|e| super::pages::failure(&e))?;
        let Some(key) = key.filter(|k| k.revoked_at.is_none()) else {
            return Err(SignedOut(parts).into_response());
        };
        Ok(Operator {
            project: key.project_name.clone(),
            caller: Caller { key },
            csrf: csrf_of(token),
            token_hash: hash,
        })
    }
}

/// Starts a session for the key `presented`; the cookie to set, or None when the key is
/// not a live one.
pub async fn sign_in(
    state: &AppState,
    presented: &str,
) -> Result<Option<HeaderValue>, crate::store::StoreError> {
    let Some(key) = state
        .app
        .keys()
        .authenticate(state.app.store(), presented.trim())
        .await?
    else {
        return Ok(None);
    };
    let token = random_token();
    let now = Timestamp::now();
    let session = SessionRecord {
        project_id: key.project_id,
        key_id: key.id,
        expires_at: now + SESSION_LIFETIME,
    };
    let hash = token_hash(&token);
    state
        .app
        .store()
        .write(move |tx| {
            Box::pin(async move {
                tx.start_session(&hash, &session, now);
                Ok::<_, crate::store::StoreError>(())
            })
        })
        .await?;
    tracing::info!(key_id = %key.id, project = %key.project_name, "console: signed in");
    Ok(Some(set_cookie(
        state,
        SESSION_COOKIE,
        &token,
        SESSION_LIFETIME,
    )))
}

/// Ends the operator's session; the cookie that removes it from the browser.
pub async fn sign_out(
    state: &AppState,
    operator: &Operator,
) -> Result<HeaderValue, crate::store::StoreError> {
    let hash = operator.token_hash.clone();
    state
        .app
        .store()
        .write(move |tx| {
            Box::pin(async move {
                tx.end_session(&hash, Timestamp::now());
                Ok::<_, crate::store::StoreError>(())
            })
        })
        .await?;
    Ok(set_cookie(state, SESSION_COOKIE, "", Duration::ZERO))
}

/// Whether a POST comes from a page of this console: its `Origin` is the server's public
/// URL, or the host the browser addressed. A form posted from any other site, or with no
/// `Origin` at all, is refused.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == origin_of(&state.public_url) {
        return true;
    }
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let scheme = if state.public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    origin == format!("{scheme}://{host}")
}

/// `scheme://host[:port]` of a URL without a trailing slash.
fn origin_of(url: &str) -> &str {
    match url.find("://") {
        Some(at) => {
            let rest = &url[at + 3..];
            let end = rest.find('/').map_or(url.len(), |slash| at + 3 + slash);
            &url[..end]
        }
        None => url,
    }
}

/// Failed sign-ins allowed per client address within [`ATTEMPT_WINDOW`].
pub const MAX_FAILED_SIGN_INS: u32 = 10;
/// The window failed sign-ins are counted over.
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The most addresses remembered; beyond, the oldest windows are forgotten.
const MAX_ADDRESSES: usize = 10_000;

/// Failed sign-ins per client address. Keys are 32 random characters, out of reach of
/// guessing; the cap keeps the console from being a free oracle all the same.
#[derive(Default)]
pub struct SignInAttempts {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl SignInAttempts {
    /// How long `client` must wait before trying again; None when it may try now.
    pub fn wait(&self, client: IpAddr) -> Option<Duration> {
        let failures = self.lock();
        let (start, count) = failures.get(&client)?;
        let elapsed = start.elapsed();
        (*count >= MAX_FAILED_SIGN_INS && elapsed < ATTEMPT_WINDOW)
            .then(|| ATTEMPT_WINDOW - elapsed)
    }

    /// Counts a failed sign-in by `client`.
    pub fn failed(&self, client: IpAddr) {
        let mut failures = self.lock();
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, (start, _)| start.elapsed() < ATTEMPT_WINDOW);
        }
        let entry = failures.entry(client).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= ATTEMPT_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Forgets `client`'s failures after it signs in.
    pub fn succeeded(&self, client: IpAddr) {
        self.lock().remove(&client);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (Instant, u32)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_console_page_is_returned_to_after_signing_in() {
        for fine in [
            "/console/pauses",
            "/console/pauses/01a2?done=x",
            "/console/audit?event=a",
        ] {
            assert_eq!(safe_next(fine), Some(fine));
        }
        for refused in [
            "https://evil.example/console/",
            "//evil.example/console/",
            "/console//evil.example",
            "/console/\\evil.example",
            "/consolex/pauses",
            "/console/sign-in?next=/console/pauses",
            "/console/sign-out",
            "/console/pauses/live",
            "/v1/pause",
        ] {
            assert_eq!(safe_next(refused), None, "{refused}");
        }
    }

    #[test]
    fn the_origin_of_a_url_is_its_scheme_and_authority() {
        assert_eq!(
            origin_of("https://pp.example.com"),
            "https://pp.example.com"
        );
        assert_eq!(
            origin_of("https://pp.example.com/base"),
            "https://pp.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn a_csrf_token_belongs_to_its_session() {
        let (a, b) = (random_token(), random_token());
        assert!(same_token(&csrf_of(&a), &csrf_of(&a)));
        assert!(!same_token(&csrf_of(&a), &csrf_of(&b)));
        assert!(!same_token(&csrf_of(&a), ""));
    }

    #[test]
    fn ten_failures_make_a_client_wait_and_others_do_not() {
        let attempts = SignInAttempts::default();
        let (one, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..MAX_FAILED_SIGN_INS - 1 {
            attempts.failed(one);
        }
        assert!(attempts.wait(one).is_none());
        attempts.failed(one);
        assert!(attempts.wait(one).is_some_and(|w| w <= ATTEMPT_WINDOW));
        assert!(attempts.wait(other).is_none());
        attempts.succeeded(one);
        assert!(attempts.wait(one).is_none());
    }
}
