//! `POST /v1/hooks/claude-code`: Claude Code's HTTP permission hook, answered by a
//! person, with the documented input and the documented answers; and the rules an
//! "Allow for 1 hour" makes.

use std::time::Duration;

use pausepoint_api::{AuditEvent, Pause};
use pausepoint_server::ids::PauseId;
use pausepoint_tests::{Reply, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const APPROVER: &str = "+13128471928";

/// A PreToolUse event as Claude Code sends it.
fn bash_event(command: &str, tool_use_id: &str) -> Value {
    json!({
        "session_id": "sess-1",
        "transcript_path": "/home/ana/.claude/projects/shop/sess-1.jsonl",
        "cwd": "/home/ana/work/shop",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "clean the build"},
        "tool_use_id": tool_use_id,
    })
}

fn hook_path(query: &str) -> String {
    format!("/v1/hooks/claude-code?{query}")
}

/// Posts the event in the background, as Claude Code would, and returns its answer.
fn post_hook(server: &TestServer, query: &str, event: Value) -> tokio::task::JoinHandle<Reply> {
    let client = server.client.clone();
    let path = hook_path(query);
    tokio::spawn(async move {
        client
            .send(
                Method::POST,
                &path,
                Some(serde_json::to_vec(&event).unwrap()),
                &[],
            )
            .await
    })
}

/// The pending question, once the hook has asked it.
async fn asked(server: &TestServer) -> Pause {
    for _ in 0..1000 {
        let pending = server.client.get_path("/v1/pause?status=pending").await;
        let mut pauses: Vec<Pause> = serde_json::from_value(pending.body["data"].clone()).unwrap();
        if let Some(pause) = pauses.pop() {
            return pause;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the hook never asked");
}

async fn respond(server: &TestServer, pause: &Pause, choice: &str, note: Option<&str>) {
    server
        .app
        .pauses()
        .respond(
            server.project_id,
            PauseId::from(pause.pause_id),
            choice,
            note,
        )
        .await
        .unwrap();
}

fn decision(reply: &Reply) -> (&str, &str) {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let output = &reply.body["hookSpecificOutput"];
    assert_eq!(output["hookEventName"], "PreToolUse");
    (
        output["permissionDecision"].as_str().unwrap(),
        output["permissionDecisionReason"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn a_person_allows_or_denies_with_a_note_that_becomes_the_reason() {
    let server = TestServer::start().await;
    let hook = post_hook(
        &server,
        &format!("approver={APPROVER}"),
        bash_event("rm -rf build/", "toolu_01"),
    );
    let question = asked(&server).await;
    assert_eq!(
        question.message,
        "Claude Code wants to run Bash in ~/work/shop: `rm -rf build/` (clean the build). Allow?"
    );
    assert_eq!(question.options, ["Allow", "Allow for 1 hour", "Deny"]);
    assert_eq!(question.timeout_default.as_deref(), Some("Deny"));
    assert!(question.allow_text_response);
    assert_eq!(
        question.metadata.as_ref().unwrap()["claude_code"]["tool_use_id"],
        "toolu_01"
    );
    // The default time to answer is five minutes, inside Claude Code's 600 s.
    assert_eq!(
        question.expires_at.as_second() - question.created_at.as_second(),
        300
    );
    respond(&server, &question, "Allow", None).await;
    let reply = hook.await.unwrap();
    let (verdict, reason) = decision(&reply);
    assert_eq!(verdict, "allow");
    assert!(reason.contains(APPROVER), "{reason}");

    let hook = post_hook(
        &server,
        &format!("approver={APPROVER}"),
        bash_event("git push --force", "toolu_02"),
    );
    let question = asked(&server).await;
    respond(&server, &question, "Deny", Some("not the force push")).await;
    let reply = hook.await.unwrap();
    assert_eq!(
        decision(&reply),
        ("deny", "Denied by +13128471928: not the force push")
    );
}

#[tokio::test]
async fn no_answer_in_time_is_a_deny_that_says_so() {
    let server = TestServer::start().await;
    let reply = post_hook(
        &server,
        &format!("approver={APPROVER}&timeout=1"),
        bash_event("terraform destroy", "toolu_03"),
    )
    .await
    .unwrap();
    let (verdict, reason) = decision(&reply);
    assert_eq!(verdict, "deny");
    assert!(reason.contains("did not answer within 1s"), "{reason}");
}

#[tokio::test]
async fn a_permission_request_gets_a_decision_with_the_input_unchanged() {
    let server = TestServer::start().await;
    let mut event = bash_event("npm publish", "toolu_04");
    event["hook_event_name"] = json!("PermissionRequest");
    event["permission_suggestions"] = json!([{"type": "addRules", "behavior": "allow"}]);
    let hook = post_hook(&server, &format!("approver={APPROVER}"), event.clone());
    let question = asked(&server).await;
    respond(&server, &question, "Allow", None).await;
    let reply = hook.await.unwrap();
    assert_eq!(
        reply.body,
        json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest",
            "decision": {"behavior": "allow", "updatedInput": event["tool_input"]}}})
    );
}

#[tokio::test]
async fn input_it_cannot_read_is_never_let_through() {
    let server = TestServer::start().await;
    let path = hook_path(&format!("approver={APPROVER}"));
    // Not JSON: a 400 naming the problem.
    let reply = server
        .client
        .send(Method::POST, &path, Some(b"{nope".to_vec()), &[])
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_json", None);
    // A PreToolUse without its tool: denied, saying why.
    let event = json!({"hook_event_name": "PreToolUse", "tool_input": {"command": "ls"}});
    let reply = server
        .client
        .send(
            Method::POST,
            &path,
            Some(event.to_string().into_bytes()),
            &[],
        )
        .await;
    let (verdict, reason) = decision(&reply);
    assert_eq!(verdict, "deny");
    assert!(reason.contains("tool_name"), "{reason}");
    // No approver anywhere: denied, saying how to name one.
    let reply = server
        .client
        .send(
            Method::POST,
            &hook_path(""),
            Some(bash_event("ls", "toolu_05").to_string().into_bytes()),
            &[],
        )
        .await;
    let (verdict, reason) = decision(&reply);
    assert_eq!(verdict, "deny");
    assert!(reason.contains("--default-approver"), "{reason}");
    // An approver the API refuses: denied, saying why.
    let reply = server
        .client
        .send(
            Method::POST,
            &hook_path("approver=not-a-phone&channel=sms"),
            Some(bash_event("ls", "toolu_06").to_string().into_bytes()),
            &[],
        )
        .await;
    assert_eq!(decision(&reply).0, "deny");
    // A wrong key: 401 (an HTTP hook then fails open in Claude Code: the README says
    // to use the command hook where that matters).
    let reply = server
        .client
        .with_key("pp_live_wrong")
        .send(
            Method::POST,
            &path,
            Some(bash_event("ls", "toolu_07").to_string().into_bytes()),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Nothing was asked.
    let pauses = server.client.get_path("/v1/pause").await;
    assert_eq!(pauses.body["data"], json!([]));
}

#[tokio::test]
async fn the_servers_default_approver_is_asked_when_the_url_names_nobody() {
    let server = TestServer::start_with(|config| {
        config.default_approver = Some(pausepoint_server::domain::approvals::Approver {
            recipient: "oncall@example.com".into(),
            channel: None,
            timeout: Duration::from_secs(60),
        });
        config.default_approval_timeout = Duration::from_secs(120);
    })
    .await;
    let hook = post_hook(&server, "", bash_event("make deploy", "toolu_08"));
    let question = asked(&server).await;
    assert_eq!(question.recipient, "oncall@example.com");
    assert_eq!(
        question.expires_at.as_second() - question.created_at.as_second(),
        120
    );
    server
        .app
        .pauses()
        .respond(
            server.project_id,
            PauseId::from(question.pause_id),
            "Deny",
            None,
        )
        .await
        .unwrap();
    assert_eq!(decision(&hook.await.unwrap()).0, "deny");
}

#[tokio::test]
async fn asking_again_about_the_same_tool_use_finds_the_same_question() {
    let server = TestServer::start().await;
    let event = bash_event("rm -rf dist", "toolu_09");
    let first = post_hook(&server, &format!("approver={APPROVER}"), event.clone());
    let question = asked(&server).await;
    // The connection drops, and the hook asks again.
    first.abort();
    let second = post_hook(&server, &format!("approver={APPROVER}"), event);
    tokio::time::sleep(Duration::from_millis(50)).await;
    respond(&server, &question, "Allow", None).await;
    assert_eq!(decision(&second.await.unwrap()).0, "allow");
    let all = server.client.get_path("/v1/pause").await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn allow_for_an_hour_allows_exactly_that_call_until_revoked() {
    let server = TestServer::start().await;
    let query = format!("approver={APPROVER}");
    let hook = post_hook(&server, &query, bash_event("rm -rf build/", "toolu_10"));
    let question = asked(&server).await;
    respond(&server, &question, "Allow for 1 hour", None).await;
    assert_eq!(decision(&hook.await.unwrap()).0, "allow");

    // The same call again, in a later tool use: allowed at once, nobody asked.
    let reply = post_hook(&server, &query, bash_event("rm -rf build/", "toolu_11"))
        .await
        .unwrap();
    let (verdict, reason) = decision(&reply);
    assert_eq!(verdict, "allow");
    assert!(reason.starts_with("Allowed by rule "), "{reason}");
    let all = server.client.get_path("/v1/pause").await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 1);

    // The rule is listed, and the audit log shows who made it and what it allowed.
    let rules = server.client.get_path("/v1/rules").await;
    assert_eq!(rules.status, StatusCode::OK);
    let rule = rules.body["data"][0].clone();
    assert_eq!(rules.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(rule["status"], "active");
    assert_eq!(rule["tool_name"], "Bash");
    assert_eq!(rule["question"], question.message);
    assert_eq!(rule["approved_by"], format!("recipient:{APPROVER}"));
    assert_eq!(rule["pause_id"], question.pause_id.to_string());
    let rule_id: Uuid = rule["rule_id"].as_str().unwrap().parse().unwrap();
    let events: Vec<AuditEvent> = server.client.audit("event=rule.created").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, format!("recipient:{APPROVER}"));
    let applied: Vec<AuditEvent> = server.client.audit("event=rule.applied").await;
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].actor, format!("rule:{rule_id}"));
    assert_eq!(applied[0].data["tool_use_id"], "toolu_11");

    // Never wider than what the approver saw: another command, or the same one in
    // another folder, is asked about.
    let mut elsewhere = bash_event("rm -rf build/", "toolu_12");
    elsewhere["cwd"] = json!("/home/ana/work/other");
    let hook = post_hook(&server, &query, elsewhere);
    let other = asked(&server).await;
    assert!(other.message.contains("~/work/other"));
    respond(&server, &other, "Deny", None).await;
    assert_eq!(decision(&hook.await.unwrap()).0, "deny");

    // Another project does not get this project's rule.
    let (other_key, _) = server.key_for_project("elsewhere").await;
    let other_project = server.client.with_key(&other_key);
    let reply = other_project
        .send(
            Method::POST,
            &hook_path(&format!("{query}&timeout=1")),
            Some(
                bash_event("rm -rf build/", "toolu_13")
                    .to_string()
                    .into_bytes(),
            ),
            &[],
        )
        .await;
    assert_eq!(decision(&reply).0, "deny");
    assert_eq!(
        other_project.get_path("/v1/rules").await.body["data"],
        json!([])
    );
    let revoke = other_project
        .send(
            Method::POST,
            &format!("/v1/rules/{rule_id}/revoke"),
            None,
            &[],
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NOT_FOUND);

    // Revoked: the same call is asked about again.
    let revoke = server
        .client
        .send(
            Method::POST,
            &format!("/v1/rules/{rule_id}/revoke"),
            None,
            &[],
        )
        .await;
    assert_eq!(revoke.status, StatusCode::OK, "{:?}", revoke.body);
    assert_eq!(revoke.body["status"], "revoked");
    let again = server
        .client
        .send(
            Method::POST,
            &format!("/v1/rules/{rule_id}/revoke"),
            None,
            &[],
        )
        .await;
    again.assert_error(StatusCode::CONFLICT, "rule_not_active", None);
    let revoked: Vec<AuditEvent> = server.client.audit("event=rule.revoked").await;
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].actor.starts_with("api_key:"));
    let hook = post_hook(&server, &query, bash_event("rm -rf build/", "toolu_14"));
    let asked_again = asked(&server).await;
    assert_eq!(asked_again.message, question.message);
    respond(&server, &asked_again, "Allow", None).await;
    assert_eq!(decision(&hook.await.unwrap()).0, "allow");

    // And the audit log still verifies with all of this on it.
    let verify = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(verify.body["ok"], true, "{:?}", verify.body);
}
