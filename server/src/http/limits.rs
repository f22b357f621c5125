//! Limits on requests: bodies are capped (and an oversized one is refused so that the
//! client can read why), every request but a long-poll answers within a time limit, and
//! each key may hold only so many long-polls open at once (one agent cannot take every
//! connection of the server).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::error::ApiError;
use super::page::{self, Page};
use super::{BODY_LIMIT, HOOK_BODY_LIMIT};
use crate::ids::KeyId;
use crate::views;

/// How much of an oversized body is read and thrown away before the 413, and for how
/// long: a client that writes its whole body before reading the answer would otherwise
/// find the connection closed under it ("broken pipe") and never see why.
const DISCARD_MOST: usize = 16 * 1024 * 1024;
const DISCARD_FOR: Duration = Duration::from_secs(10);

/// Reads the body, up to [`BODY_LIMIT`], before the request goes on; refuses a larger one
/// with 413. A client that asked `Expect: 100-continue` is refused before it sends the
/// body; another has its body read and discarded (bounded) first, then the connection is
/// closed.
///
/// A layer with a future of its own rather than `middleware::from_fn`: a long-poll holds
/// this future for as long as it waits, and once the body is read it is just the inner
/// service's future (the read, boxed, is dropped by then).
#[derive(Debug, Clone, Copy, Default)]
pub struct BoundedBody;

impl<S> Layer<S> for BoundedBody {
    type Service = Bounded<S>;

    fn layer(&self, inner: S) -> Bounded<S> {
        Bounded { inner }
    }
}

/// A service whose requests come with their bodies read, within the limit.
#[derive(Debug, Clone)]
pub struct Bounded<S> {
    inner: S,
}

impl<S> Service<Request> for Bounded<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Bounding<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Bounding<S> {
        // The service made ready by poll_ready goes with the request; a clone stays.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        Bounding::Reading {
            read: Box::pin(read_bounded(request)),
            inner: Some(inner),
        }
    }
}

type Read = Pin<Box<dyn Future<Output = Result<Request, Response>> + Send>>;

pin_project! {
    /// Reading the body, then answering.
    #[project = BoundingStep]
    pub enum Bounding<S>
    where
        S: Service<Request>,
    {
        Reading { read: Read, inner: Option<S> },
        Answering { #[pin] answer: S::Future },
    }
}

impl<S> Future for Bounding<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                BoundingStep::Reading { read, inner } => {
                    let request = match ready!(read.as_mut().poll(cx)) {
                        Ok(request) => request,
                        Err(refused) => return Poll::Ready(Ok(refused)),
                    };
                    let Some(mut inner) = inner.take() else {
                        // Only a future polled after it finished gets here.
                        return Poll::Pending;
                    };
                    let answer = inner.call(request);
                    self.set(Bounding::Answering { answer });
                }
                BoundingStep::Answering { answer } => return answer.poll(cx),
            }
        }
    }
}

/// The request with its body read into memory, or the answer refusing it.
async fn read_bounded(request: Request) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let waits_to_send = parts
        .headers
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let page = parts.uri.path().starts_with("/r/");
    // A hook event carries the tool's whole input (a Write's file, say).
    let limit = if parts.uri.path() == super::hooks::CLAUDE_CODE_PATH {
        HOOK_BODY_LIMIT
    } else {
        BODY_LIMIT
    };
    if declared.is_some_and(|n| n > limit as u64) {
        if !waits_to_send {
            discard(body.into_data_stream(), 0).await;
        }
        return Err(too_large(page, limit).await);
    }
    let mut stream = body.into_data_stream();
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            // The client went away mid-body: nothing to answer it.
            return Err(
                ApiError::invalid_json("the request body ended before it was complete")
                    .into_response(),
            );
        };
        if bytes.len() + chunk.len() > limit {
            discard(stream, bytes.len() + chunk.len()).await;
            return Err(too_large(page, limit).await);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Request::from_parts(parts, Body::from(Bytes::from(bytes))))
}

/// Reads what is left of a body, up to [`DISCARD_MOST`] in all and for [`DISCARD_FOR`].
async fn discard(mut stream: axum::body::BodyDataStream, mut read: usize) {
    let until = Instant::now() + DISCARD_FOR;
    while read < DISCARD_MOST {
        match tokio::time::timeout_at(until.into(), stream.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len(),
            _ => break,
        }
    }
}

/// The 413, as JSON or as a page, on a connection that then closes.
async fn too_large(page: bool, limit: usize) -> Response {
    let mut response = if page {
        page::with_page_headers(
            Page(
                StatusCode::PAYLOAD_TOO_LARGE,
                views::bad_request("That answer is too long. Go back and shorten the note."),
            )
            .into_response(),
        )
        .await
    } else {
        ApiError::payload_too_large(limit).into_response()
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

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
