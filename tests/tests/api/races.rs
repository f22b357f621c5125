//! Racing decisions: exactly one wins, every other gets 409, the audit has one ending.

use std::time::Duration;

use pausepoint_api::{AuditEventKind, PauseStatus};
use pausepoint_server::domain::pauses::PauseError;
use pausepoint_server::ids::PauseId;
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;

#[tokio::test]
async fn fifty_racing_cancels_responses_and_timeouts_make_one_decision() {
    let server = TestServer::start().await;
    for round in 0..3 {
        let pause = server
            .client
            .create(sms_pause(Some(3600)))
            .await
            .pause(StatusCode::CREATED);
        let id = pause.pause_id;
        // The timeout attempts act as the worker would once the deadline has passed.
        let after_deadline = pause.expires_at + Duration::from_secs(1);
        let attempts = (0..50).map(|i| {
            let server_client = server.client.clone();
            let pauses = server.app.pauses().clone();
            let project = server.project_id;
            async move {
                match (i + round) % 3 {
                    0 => {
                        let reply = server_client.cancel(id).await;
                        match reply.status {
                            StatusCode::OK => Ok(PauseStatus::Cancelled),
                            StatusCode::CONFLICT => Err("409"),
                            other => panic!("cancel answered {other}: {}", reply.body),
                        }
                    }
                    1 => {
                        let choice = if i % 2 == 0 { "Approve" } else { "Reject" };
                        match pauses
                            .respond(project, PauseId::from(id), choice, None)
                            .await
                        {
                            Ok(_) => Ok(PauseStatus::Responded),
                            Err(PauseError::NotPending(_)) => Err("409"),
                            Err(e) => panic!("respond failed: {e}"),
                        }
                    }
                    _ => match pauses
                        .time_out(project, PauseId::from(id), after_deadline)
                        .await
                    {
                        Ok(_) => Ok(PauseStatus::TimedOut),
                        Err(PauseError::NotPending(_)) => Err("409"),
                        Err(e) => panic!("time_out failed: {e}"),
                    },
                }
            }
        });
        let results = futures_util::future::join_all(attempts.map(tokio::spawn)).await;
        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        let winners: Vec<_> = results.iter().filter_map(|r| r.ok()).collect();
        assert_eq!(winners.len(), 1, "exactly one attempt wins: {results:?}");
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 49);

        let final_pause = server.client.get(id).await.pause(StatusCode::OK);
        assert_eq!(final_pause.status, winners[0]);
        let events = server.client.audit(&format!("pause_id={id}")).await;
        let endings: Vec<_> = events
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    AuditEventKind::PauseResponded
                        | AuditEventKind::PauseTimedOut
                        | AuditEventKind::PauseCancelled
                )
            })
            .collect();
        assert_eq!(endings.len(), 1, "one terminal audit event: {endings:?}");
        assert_eq!(endings[0].data["status"], final_pause.status.as_str());
    }
    let report = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
}
