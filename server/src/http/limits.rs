//! Limits on requests: every request but a long-poll answers within a time limit, and each
//! key may hold only so many long-polls open at once (one agent cannot take every
//! connection of the server).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::ids::KeyId;

/// Runs the request, or answers 503 when it takes longer than `limit`.
pub async fn within(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timeout(limit).into_response(),
    }
}

/// How many long-polls each key holds open.
pub struct LongPolls {
    limit: usize,
    open: Mutex<HashMap<KeyId, usize>>,
}

/// One open long-poll; it counts until dropped.
pub struct LongPoll {
    polls: Arc<LongPolls>,
    key: KeyId,
}

impl LongPolls {
    pub fn new(limit: usize) -> LongPolls {
        LongPolls {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// How many long-polls are open, all keys together.
    pub fn total(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// A place for one more long-poll of `key`, or None when it holds its limit.
    pub fn open(self: &Arc<Self>, key: KeyId) -> Option<LongPoll> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(LongPoll {
            polls: Arc::clone(self),
            key,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for LongPoll {
    fn drop(&mut self) {
        let mut open = self.polls.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_limit_of_long_polls_and_more_as_they_end() {
        let polls = Arc::new(LongPolls::new(2));
        let (key, other) = (KeyId::new(), KeyId::new());
        let first = polls.open(key);
        let second = polls.open(key);
        assert!(first.is_some() && second.is_some());
        assert!(polls.open(key).is_none(), "the third is refused");
        assert!(polls.open(other).is_some(), "another key is not affected");
        drop(first);
        assert!(polls.open(key).is_some());
    }
}
