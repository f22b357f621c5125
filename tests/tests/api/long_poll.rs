//! `GET /v1/pause/{id}?wait=N` answers as soon as the pause is decided, or after N seconds.

use std::time::{Duration, Instant};

use pausepoint_api::PauseStatus;
use pausepoint_server::ids::PauseId;
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;

#[tokio::test]
async fn a_long_poll_returns_when_the_human_decides() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let client = server.client.clone();
    let started = Instant::now();
    let waiting = tokio::spawn(async move { client.wait(pause.pause_id, 60).await });
    // Let the poll reach the server and start waiting.
    while server.app.pauses().watching() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server
        .app
        .pauses()
        .respond(
            server.project_id,
            PauseId::from(pause.pause_id),
            "Approve",
            None,
        )
        .await
        .unwrap();
    let decided = waiting.await.unwrap().pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    assert_eq!(decided.response_choice.as_deref(), Some("Approve"));
    // Woken by the decision, not by the end of the 60 s wait.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn a_long_poll_returns_the_pending_pause_when_its_wait_runs_out() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let started = Instant::now();
    let polled = server
        .client
        .wait(pause.pause_id, 1)
        .await
        .pause(StatusCode::OK);
    assert_eq!(polled.status, PauseStatus::Pending);
    assert!(started.elapsed() >= Duration::from_secs(1));
    // A decided pause answers at once whatever the wait.
    server
        .client
        .cancel(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    let polled = server
        .client
        .wait(pause.pause_id, 60)
        .await
        .pause(StatusCode::OK);
    assert_eq!(polled.status, PauseStatus::Cancelled);
}

#[tokio::test]
async fn hundreds_of_waiters_wake_on_one_decision_and_leave_nothing_behind() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let other = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let waiters: Vec<_> = (0..500)
        .map(|i| {
            let client = server.client.clone();
            let id = if i % 2 == 0 {
                pause.pause_id
            } else {
                other.pause_id
            };
            tokio::spawn(async move { client.wait(id, 60).await })
        })
        .collect();
    while server.app.pauses().watching() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server
        .client
        .cancel(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    server
        .client
        .cancel(other.pause_id)
        .await
        .pause(StatusCode::OK);
    for waiter in waiters {
        let reply = waiter.await.unwrap();
        assert_eq!(reply.pause(StatusCode::OK).status, PauseStatus::Cancelled);
    }
    assert_eq!(server.app.pauses().watching(), 0);
}

#[tokio::test]
async fn shutting_down_answers_waiting_polls_at_once() {
    let mut server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let client = server.client.clone();
    let waiting = tokio::spawn(async move { client.wait(pause.pause_id, 60).await });
    while server.app.pauses().watching() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    server.stop().await;
    assert_eq!(
        waiting.await.unwrap().pause(StatusCode::OK).status,
        PauseStatus::Pending
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_poll_after_a_decision_is_acknowledged_shows_it_pending() {
    let server = TestServer::start().await;
    for _ in 0..5 {
        let pause = server
            .client
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
        let id = pause.pause_id;
        // Pollers hammer the pause (and so fill the server's cache) while it is decided.
        let decided_at: std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>> =
            std::sync::Arc::default();
        let pollers: Vec<_> = (0..4)
            .map(|_| {
                let (client, decided_at) = (server.client.clone(), decided_at.clone());
                tokio::spawn(async move {
                    let mut stale = Vec::new();
                    for _ in 0..400 {
                        let started = std::time::Instant::now();
                        let status = client.status(id).await;
                        let acknowledged = *decided_at.lock().unwrap();
                        if acknowledged.is_some_and(|at| started > at)
                            && status == PauseStatus::Pending
                        {
                            stale.push(started);
                        }
                        if acknowledged.is_some_and(|at| started > at + Duration::from_millis(50)) {
                            break;
                        }
                    }
                    stale
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        server.client.cancel(id).await.pause(StatusCode::OK);
        *decided_at.lock().unwrap() = Some(std::time::Instant::now());
        for poller in pollers {
            let stale = poller.await.unwrap();
            assert!(
                stale.is_empty(),
                "{} polls after the decision showed pending",
                stale.len()
            );
        }
    }
}
