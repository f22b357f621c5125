//! `pp mcp`: the tools as an MCP client sees them, in this process over a pipe and as the
//! real binary over stdio, against the real server.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use pausepoint_api::PauseStatus;
use pausepoint_client::Client as ApiClient;
use pausepoint_mcp::{Approver, PausePointTools};
use pausepoint_tests::{pp_binary, sms_pause, TestServer};
use reqwest::StatusCode;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientRequest, Request};
use rmcp::service::{PeerRequestOptions, RunningService};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

type McpClient = RunningService<RoleClient, ()>;

/// The tools served in this process over an in-memory pipe, with an rmcp client on the other end.
async fn connect(base: &str, key: &str, approver: Option<Approver>) -> McpClient {
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    let tools = PausePointTools::new(ApiClient::new(base, key).unwrap(), approver);
    tokio::spawn(async move {
        let service = tools.serve(server_end).await.unwrap();
        let _ = service.waiting().await;
    });
    ().serve(client_end).await.unwrap()
}

async fn call(client: &McpClient, tool: &'static str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await
        .unwrap()
}

/// The tool's one-line text: the first text block (a second one, when there is
/// structured content, holds the same JSON; see [`json_text`]).
fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// The structured content as the text content carries it, for clients that ignore
/// `structuredContent`: the last text block.
fn json_text(result: &CallToolResult) -> Value {
    let last = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .next_back()
        .unwrap();
    serde_json::from_str(&last).unwrap()
}

fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// Answers a pause on its page, as the human would.
async fn answer(server: &TestServer, id: uuid::Uuid, choice: &str, note: Option<&str>) {
    let pause = server.client.get(id).await.pause(StatusCode::OK);
    let mut form = vec![("choice", choice)];
    if let Some(note) = note {
        form.push(("note", note));
    }
    let page = reqwest::Client::new()
        .post(server.link(&pause))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

async fn until_waiting(server: &TestServer) {
    while server.app.pauses().watching() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_tools_and_their_schemas() {
    let server = TestServer::start().await;
    let client = connect(&server.client.base, &server.client.key, None).await;
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cancel_pause_request",
            "create_pause_request",
            "get_audit_log",
            "list_pause_requests",
            "poll_pause_request",
            "request_permission"
        ]
    );
    let schema = |name: &str| {
        let tool = tools.iter().find(|t| t.name == name).unwrap();
        assert!(
            tool.description.as_deref().is_some_and(|d| d.len() > 80),
            "{name} explains itself to a model"
        );
        serde_json::to_value(&tool.input_schema).unwrap()
    };
    let create = schema("create_pause_request");
    let mut required: Vec<&str> = create["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort_unstable();
    // `recipient`, or `recipients` to ask several people: neither alone is required.
    assert_eq!(required, ["message", "options"]);
    for field in [
        "recipient",
        "recipients",
        "quorum",
        "escalation",
        "remind_every_seconds",
        "channel",
        "timeout_hours",
        "timeout_seconds",
        "timeout_default",
        "metadata",
        "allow_text_response",
        "webhook_url",
        "idempotency_key",
    ] {
        assert!(
            create["properties"][field]["description"].is_string(),
            "{field} is described"
        );
    }
    let poll = schema("poll_pause_request");
    assert_eq!(poll["required"], json!(["pause_id"]));
    assert!(poll["properties"]["wait_seconds"]["description"]
        .as_str()
        .unwrap()
        .contains("50"));
    assert_eq!(
        schema("cancel_pause_request")["required"],
        json!(["pause_id"])
    );
    assert!(schema("list_pause_requests")["properties"]["cursor"].is_object());
    assert!(schema("get_audit_log")["properties"]["since"].is_object());
    assert_eq!(
        schema("request_permission")["required"],
        json!(["tool_name"])
    );
}

/// Every `"type"` in a schema, to check none allows `"null"` beside another type.
fn types(schema: &Value, found: &mut Vec<Value>) {
    match schema {
        Value::Object(object) => {
            for (key, value) in object {
                if key == "type" {
                    found.push(value.clone());
                }
                types(value, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| types(item, found)),
        _ => {}
    }
}

/// A JSON Schema 2020-12 validator that refuses any format it does not know.
fn strict_validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::meta::validate(schema)
        .unwrap_or_else(|e| panic!("not a 2020-12 schema: {e}\n{schema:#}"));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(schema)
        .unwrap_or_else(|e| panic!("a strict validator refuses it: {e}\n{schema:#}"))
}

#[tokio::test]
async fn every_schema_is_strict_json_schema_and_every_answer_matches_its_output_schema() {
    let server = TestServer::start().await;
    let client = connect(
        &server.client.base,
        &server.client.key,
        approver(Duration::from_secs(1)),
    )
    .await;
    let tools = client.list_all_tools().await.unwrap();
    let mut outputs = std::collections::HashMap::new();
    for tool in &tools {
        let input = serde_json::to_value(&tool.input_schema).unwrap();
        strict_validator(&input);
        let mut found = Vec::new();
        types(&input, &mut found);
        assert!(
            found.iter().all(Value::is_string),
            "{}: every type is one type: {found:?}",
            tool.name
        );
        let output = serde_json::to_value(
            tool.output_schema
                .as_ref()
                .unwrap_or_else(|| panic!("{} declares an outputSchema", tool.name)),
        )
        .unwrap();
        assert_eq!(output["type"], "object");
        outputs.insert(tool.name.to_string(), strict_validator(&output));
    }
    // Closed sets are enums, numbers have bounds.
    let schema = |name: &str| {
        let tool = tools.iter().find(|t| t.name == name).unwrap();
        serde_json::to_value(&tool.input_schema).unwrap()
    };
    let create = schema("create_pause_request");
    assert_eq!(
        create["properties"]["channel"]["enum"],
        json!(["sms", "email", "slack", "ntfy"])
    );
    assert_eq!(create["properties"]["options"]["minItems"], 2);
    assert_eq!(create["properties"]["options"]["maxItems"], 5);
    assert_eq!(create["properties"]["timeout_hours"]["maximum"], 720.0);
    let poll = schema("poll_pause_request");
    assert_eq!(poll["properties"]["wait_seconds"]["maximum"], 50);
    assert_eq!(poll["properties"]["wait_seconds"]["minimum"], 0);
    assert_eq!(
        schema("list_pause_requests")["properties"]["status"]["enum"],
        json!(["pending", "responded", "timed_out", "cancelled"])
    );
    assert!(schema("get_audit_log")["properties"]["event"]["enum"]
        .as_array()
        .unwrap()
        .contains(&json!("pause.responded")));

    // What each tool returns matches what it declares, in structuredContent and as text.
    let check = |name: &str, result: &CallToolResult| {
        assert!(!is_error(result), "{name}: {}", text(result));
        let structured = result.structured_content.clone().unwrap();
        assert_eq!(
            json_text(result),
            structured,
            "{name}: the text carries the JSON"
        );
        let validator = &outputs[name];
        let problems: Vec<String> = validator
            .iter_errors(&structured)
            .map(|e| e.to_string())
            .collect();
        assert!(problems.is_empty(), "{name}: {problems:?}\n{structured:#}");
    };
    let created = call(
        &client,
        "create_pause_request",
        json!({"recipient": "ops@example.com", "message": "Deploy?", "options": ["Deploy", "Hold"],
               "timeout_seconds": 600, "metadata": {"run": 7}}),
    )
    .await;
    check("create_pause_request", &created);
    let id = created.structured_content.as_ref().unwrap()["pause_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let polled = call(
        &client,
        "poll_pause_request",
        json!({"pause_id": id, "wait_seconds": 0}),
    )
    .await;
    check("poll_pause_request", &polled);
    check(
        "list_pause_requests",
        &call(&client, "list_pause_requests", json!({"status": "pending"})).await,
    );
    check(
        "cancel_pause_request",
        &call(&client, "cancel_pause_request", json!({"pause_id": id})).await,
    );
    check(
        "get_audit_log",
        &call(&client, "get_audit_log", json!({"pause_id": id})).await,
    );
    check(
        "request_permission",
        &call(
            &client,
            "request_permission",
            json!({"tool_name": "Bash", "input": {"command": "ls"}}),
        )
        .await,
    );
}

#[tokio::test]
async fn create_poll_cancel_list_and_audit_against_the_real_server() {
    let server = TestServer::start().await;
    let client = connect(&server.client.base, &server.client.key, None).await;

    // The overview's example prompt, as a model would turn it into a call.
    let created = call(
        &client,
        "create_pause_request",
        json!({
            "recipient": "+1 (312) 847-1928",
            "message": "Approve the $500 transfer?",
            "options": ["Approve", "Reject"],
            "timeout_hours": 2,
            "timeout_default": "Reject",
            "metadata": {"amount_usd": 500}
        }),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    let pause = created.structured_content.clone().unwrap();
    assert_eq!(pause["channel"], "sms");
    assert_eq!(pause["recipient"], "+13128471928");
    let id = pause["pause_id"].as_str().unwrap().to_owned();
    assert!(text(&created).contains(&format!("Call poll_pause_request with pause_id {id}")));
    let expires = pause["expires_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let created_at = pause["created_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    assert_eq!(
        expires.duration_since(created_at),
        jiff::SignedDuration::from_hours(2)
    );

    let pending = call(
        &client,
        "poll_pause_request",
        json!({"pause_id": id, "wait_seconds": 0}),
    )
    .await;
    let summary = text(&pending);
    assert!(
        summary.starts_with("Still pending; expires in ")
            && summary.ends_with("Call poll_pause_request again to keep waiting."),
        "{summary}"
    );
    assert!(
        summary.contains("in 1h59m") || summary.contains("in 2h00m"),
        "{summary}"
    );
    assert_eq!(pending.structured_content.unwrap()["status"], "pending");

    // A poll that waits while the human decides.
    let waiting = {
        let client_id = id.clone();
        let base = server.client.base.clone();
        let key = server.client.key.clone();
        tokio::spawn(async move {
            let client = connect(&base, &key, None).await;
            call(
                &client,
                "poll_pause_request",
                json!({"pause_id": client_id, "wait_seconds": 50}),
            )
            .await
        })
    };
    until_waiting(&server).await;
    answer(&server, id.parse().unwrap(), "Reject", None).await;
    let decided = waiting.await.unwrap();
    assert_eq!(text(&decided), "Responded: Reject");
    let decided = decided.structured_content.unwrap();
    assert_eq!(decided["response_choice"], "Reject");
    // The decision's receipt, for whatever acts on it next.
    let keys = server.client.get_path("/v1/audit/public-key").await.body;
    let keys: pausepoint_api::proof::Jwks = serde_json::from_value(keys).unwrap();
    let claims = pausepoint_api::proof::ReceiptClaims::verify(
        decided["receipt"]
            .as_str()
            .expect("the MCP result carries the receipt"),
        &keys,
    )
    .unwrap();
    assert_eq!(claims.response_choice.as_deref(), Some("Reject"));

    // Cancel, list, audit.
    let other = call(&client, "create_pause_request", json!({"recipient": "ops@example.com", "message": "Deploy?", "options": ["Deploy", "Abort"]})).await;
    let other_id = other.structured_content.unwrap()["pause_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = call(
        &client,
        "cancel_pause_request",
        json!({"pause_id": other_id}),
    )
    .await;
    assert_eq!(cancelled.structured_content.unwrap()["status"], "cancelled");
    let again = call(
        &client,
        "cancel_pause_request",
        json!({"pause_id": other_id}),
    )
    .await;
    assert!(
        is_error(&again) && text(&again).contains("already cancelled"),
        "{}",
        text(&again)
    );
    let listed = call(
        &client,
        "list_pause_requests",
        json!({"status": "cancelled"}),
    )
    .await;
    assert_eq!(
        listed.structured_content.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let audit = call(&client, "get_audit_log", json!({"pause_id": id})).await;
    let events: Vec<String> = audit.structured_content.unwrap()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.contains(&"pause.created".to_owned())
            && events.contains(&"pause.responded".to_owned()),
        "{events:?}"
    );
}

#[tokio::test]
async fn errors_are_tool_errors_and_the_next_call_works() {
    let server = TestServer::start().await;
    let client = connect(&server.client.base, &server.client.key, None).await;
    let unknown = call(
        &client,
        "poll_pause_request",
        json!({"pause_id": uuid::Uuid::now_v7().to_string()}),
    )
    .await;
    assert!(is_error(&unknown) && text(&unknown).contains("no pause with this id"));
    let malformed = call(
        &client,
        "poll_pause_request",
        json!({"pause_id": "yesterday's"}),
    )
    .await;
    assert!(is_error(&malformed) && text(&malformed).contains("not a pause_id"));
    let invalid = call(
        &client,
        "create_pause_request",
        json!({"recipient": "+15550100", "message": "Go?", "options": ["Only one"]}),
    )
    .await;
    assert!(
        is_error(&invalid) && text(&invalid).contains("options"),
        "{}",
        text(&invalid)
    );
    let status = call(
        &client,
        "list_pause_requests",
        json!({"status": "finished"}),
    )
    .await;
    assert!(is_error(&status));
    let works = call(&client, "list_pause_requests", json!({})).await;
    assert!(!is_error(&works));

    let bad_key = connect(
        &server.client.base,
        "pp_live_notthekeynotthekeynotthekey00",
        None,
    )
    .await;
    let refused = call(&bad_key, "list_pause_requests", json!({})).await;
    assert!(
        is_error(&refused) && text(&refused).contains("PAUSEPOINT_API_KEY"),
        "{}",
        text(&refused)
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = connect(&nowhere, &server.client.key, None).await;
    let unreachable = call(
        &down,
        "create_pause_request",
        json!({"recipient": "+15550100", "message": "Go?", "options": ["A", "B"]}),
    )
    .await;
    assert!(
        is_error(&unreachable) && text(&unreachable).contains("is `pp server` running there?"),
        "{}",
        text(&unreachable)
    );
    let still = call(&down, "list_pause_requests", json!({})).await;
    assert!(
        is_error(&still),
        "the server keeps answering after an error"
    );
}

#[tokio::test]
async fn a_cancelled_call_stops_waiting() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let client = connect(&server.client.base, &server.client.key, None).await;
    let Value::Object(arguments) =
        json!({"pause_id": pause.pause_id.to_string(), "wait_seconds": 50})
    else {
        unreachable!()
    };
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(
                CallToolRequestParams::new("poll_pause_request").with_arguments(arguments),
            )),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    until_waiting(&server).await;
    handle
        .cancel(Some("the user moved on".into()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while server.app.pauses().watching() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the server stopped long-polling once the call was cancelled");
}

fn approver(timeout: Duration) -> Option<Approver> {
    Some(Approver {
        recipient: "+13128471928".into(),
        channel: None,
        timeout,
    })
}

#[tokio::test]
async fn request_permission_allows_denies_and_times_out_to_deny() {
    let server = TestServer::start().await;
    let input = json!({"command": "rm -rf ./build", "description": "Clean the build folder"});
    for (choice, note) in [("Allow", None), ("Deny", Some("Not on Fridays"))] {
        let base = server.client.base.clone();
        let key = server.client.key.clone();
        let sent = input.clone();
        let asking = tokio::spawn(async move {
            let client = connect(&base, &key, approver(Duration::from_secs(600))).await;
            call(&client, "request_permission", json!({"tool_name": "Bash", "input": sent, "tool_use_id": format!("toolu_{choice}")})).await
        });
        until_waiting(&server).await;
        let pending = server.client.get_path("/v1/pause?status=pending").await;
        let question = pending.body["data"][0].clone();
        assert_eq!(
            question["message"],
            "Claude Code wants to run Bash: `rm -rf ./build` (Clean the build folder). Allow?"
        );
        assert_eq!(question["options"], json!(["Allow", "Deny"]));
        assert_eq!(question["timeout_default"], "Deny");
        answer(
            &server,
            question["pause_id"].as_str().unwrap().parse().unwrap(),
            choice,
            note,
        )
        .await;
        let result = asking.await.unwrap();
        let decision: Value = serde_json::from_str(&text(&result)).unwrap();
        assert_eq!(Some(&decision), result.structured_content.as_ref());
        if choice == "Allow" {
            assert_eq!(
                decision,
                json!({"behavior": "allow", "updatedInput": input})
            );
        } else {
            assert_eq!(
                decision,
                json!({"behavior": "deny", "message": "Denied by +13128471928: Not on Fridays"})
            );
        }
        while server.app.pauses().watching() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Nobody answers: deny.
    let client = connect(
        &server.client.base,
        &server.client.key,
        approver(Duration::from_secs(1)),
    )
    .await;
    let result = call(
        &client,
        "request_permission",
        json!({"tool_name": "Write", "input": {"file_path": "/etc/hosts"}}),
    )
    .await;
    let decision: Value = serde_json::from_str(&text(&result)).unwrap();
    assert_eq!(
        decision,
        json!({"behavior": "deny", "message": "Denied: +13128471928 did not answer within 1s (PausePoint denies when nobody answers)."})
    );
    // No approver configured: deny, saying why.
    let unconfigured = connect(&server.client.base, &server.client.key, None).await;
    let result = call(
        &unconfigured,
        "request_permission",
        json!({"tool_name": "Bash", "input": {}}),
    )
    .await;
    assert!(text(&result).contains("PAUSEPOINT_APPROVER"));
}

/// JSON-RPC over the real `pp mcp`'s stdin and stdout.
struct Session {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Session {
    async fn send(&mut self, message: Value) {
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout is not JSON-RPC ({e}): {line}"))
    }

    /// Messages until the response to request `id`, with the notifications seen before it.
    async fn response(&mut self, id: u64) -> (Value, Vec<Value>) {
        let mut notifications = Vec::new();
        loop {
            let message = self.next().await;
            if message["id"] == id {
                return (message, notifications);
            }
            notifications.push(message);
        }
    }
}

#[tokio::test]
async fn the_real_pp_mcp_over_stdio_with_progress() {
    let server = TestServer::start().await;
    let mut child = Command::new(pp_binary())
        .arg("mcp")
        .env("PAUSEPOINT_URL", &server.client.base)
        .env("PAUSEPOINT_API_KEY", &server.client.key)
        .env("PAUSEPOINT_CONFIG", "/nonexistent/config.json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut io = Session {
        stdin: child.stdin.take().unwrap(),
        lines: BufReader::new(child.stdout.take().unwrap()).lines(),
        child,
    };
    io.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}
    }}))
    .await;
    let (init, _) = io.response(1).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "pausepoint", "{init}");
    assert!(init["result"]["capabilities"]["tools"].is_object());
    io.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    io.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    let (list, _) = io.response(2).await;
    assert_eq!(list["result"]["tools"].as_array().unwrap().len(), 6);

    io.send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "create_pause_request", "arguments": {
        "recipient": "+1 (312) 847-1928", "message": "Approve the $500 transfer?", "options": ["Approve", "Reject"],
        "timeout_hours": 2, "timeout_default": "Reject"
    }}}))
    .await;
    let (created, _) = io.response(3).await;
    let id = created["result"]["structuredContent"]["pause_id"]
        .as_str()
        .unwrap()
        .to_owned();

    io.send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "poll_pause_request", "arguments": {"pause_id": id, "wait_seconds": 50},
            "_meta": {"progressToken": "poll-1"}
        }}),
    )
    .await;
    // The first progress report arrives while it waits; then the human decides.
    let progress = io.next().await;
    assert_eq!(progress["method"], "notifications/progress", "{progress}");
    assert_eq!(progress["params"]["progressToken"], "poll-1");
    assert_eq!(progress["params"]["total"], 50.0);
    assert!(progress["params"]["message"]
        .as_str()
        .unwrap()
        .contains("left"));
    answer(&server, id.parse().unwrap(), "Approve", None).await;
    let (polled, _) = io.response(4).await;
    assert_eq!(polled["result"]["content"][0]["text"], "Responded: Approve");
    assert_eq!(polled["result"]["structuredContent"]["status"], "responded");

    // A bad call is a tool error, and the server goes on.
    io.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "cancel_pause_request", "arguments": {"pause_id": id}}})).await;
    let (refused, _) = io.response(5).await;
    assert_eq!(refused["result"]["isError"], true);
    io.send(json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "list_pause_requests", "arguments": {}}})).await;
    let (listed, _) = io.response(6).await;
    assert_eq!(
        listed["result"]["structuredContent"]["data"][0]["status"],
        PauseStatus::Responded.as_str()
    );
    io.send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}})).await;
    let (unknown, _) = io.response(7).await;
    assert!(
        unknown["error"].is_object() || unknown["result"]["isError"] == true,
        "{unknown}"
    );
    io.send(json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}))
        .await;
    assert!(io.response(8).await.0["result"]["tools"].is_array());

    drop(io.stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), io.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "pp mcp ends cleanly when its client goes away"
    );
}

/// An rmcp client of the server's own `/mcp`, over Streamable HTTP with `key` as the bearer.
async fn connect_http(base: &str, key: &str, query: &str) -> Result<McpClient, String> {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp{query}"))
        .auth_header(key);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_server_serves_the_tools_at_mcp_with_the_key_as_bearer() {
    let server = TestServer::start().await;
    let base = server.client.base.clone();

    // A wrong or missing key is refused when the client connects, with a 401.
    let refused = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "curl", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let wrong = connect_http(&base, "pp_live_wrong", "").await;
    assert!(wrong.is_err(), "a wrong key must not connect");

    // The right key: the same tools, creating, waiting and deciding for real.
    let client = connect_http(&base, &server.client.key, "").await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 6);
    let created = call(
        &client,
        "create_pause_request",
        json!({"recipient": "+13128471928", "message": "Ship release 4.2 to the store?",
               "options": ["Ship", "Hold"], "timeout_seconds": 600}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    let id: uuid::Uuid = created.structured_content.as_ref().unwrap()["pause_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Created in the key's own project, as the REST API would.
    assert_eq!(
        server.client.get(id).await.pause(StatusCode::OK).message,
        "Ship release 4.2 to the store?"
    );
    let waiting = {
        let client = connect_http(&base, &server.client.key, "").await.unwrap();
        tokio::spawn(async move {
            call(
                &client,
                "poll_pause_request",
                json!({"pause_id": id.to_string(), "wait_seconds": 30}),
            )
            .await
        })
    };
    until_waiting(&server).await;
    answer(&server, id, "Ship", None).await;
    let decided = waiting.await.unwrap();
    assert_eq!(text(&decided), "Responded: Ship");
    assert_eq!(
        decided.structured_content.as_ref().unwrap()["status"],
        "responded"
    );

    // request_permission asks the approver the /mcp URL names.
    let permission_client = connect_http(
        &base,
        &server.client.key,
        "?approver=ops%40example.com&timeout=1",
    )
    .await
    .unwrap();
    let result = call(
        &permission_client,
        "request_permission",
        json!({"tool_name": "Bash", "input": {"command": "make deploy"}}),
    )
    .await;
    let decision = result.structured_content.clone().unwrap();
    assert_eq!(decision["behavior"], "deny");
    assert!(
        decision["message"]
            .as_str()
            .unwrap()
            .contains("ops@example.com did not answer within 1s"),
        "{decision}"
    );

    // A key revoked while a client is connected: the next call is refused.
    let (other_key, _) = server.key_for_project("remote").await;
    let other = connect_http(&base, &other_key, "").await.unwrap();
    let record = server
        .app
        .store()
        .keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.project_name == "remote")
        .unwrap();
    pausepoint_server::domain::keys::revoke_key(
        server.app.store(),
        record.id,
        pausepoint_server::store::Actor::System,
        pausepoint_server::domain::pauses::now(),
    )
    .await
    .unwrap();
    let after = other
        .call_tool(CallToolRequestParams::new("list_pause_requests"))
        .await;
    assert!(after.is_err(), "a revoked key's call is refused: {after:?}");
}

#[tokio::test]
async fn pp_mcp_with_a_refused_key_says_so_at_start() {
    let server = TestServer::start().await;
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(pp_binary())
            .arg("mcp")
            .env("PAUSEPOINT_URL", &server.client.base)
            .env("PAUSEPOINT_API_KEY", "pp_live_wrong")
            .env("PAUSEPOINT_CONFIG", "/nonexistent/config.json")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("refused the API key"), "{stderr}");
    assert!(!stderr.contains("pp_live_wrong"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing but the protocol on stdout"
    );
}

#[tokio::test]
async fn a_client_with_tasks_gets_a_task_that_completes_when_the_human_decides() {
    use rmcp::model::{
        CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig, GetTaskParams,
        Implementation, TaskPayload, TaskStatus,
    };
    let server = TestServer::start().await;
    let (server_end, client_end) = tokio::io::duplex(64 * 1024);
    let tools = PausePointTools::new(
        ApiClient::new(&server.client.base, &server.client.key).unwrap(),
        approver(Duration::from_secs(600)),
    );
    tokio::spawn(async move {
        let service = tools.serve(server_end).await.unwrap();
        let _ = service.waiting().await;
    });
    let client = ClientConfig::new(
        ClientCapabilities::builder().enable_tasks().build(),
        Implementation::new("task-client", "1"),
    )
    .serve(client_end)
    .await
    .unwrap();
    let info = client.peer_info().unwrap();
    assert!(
        info.capabilities.supports_tasks(),
        "the server offers tasks"
    );

    // Creating is quick and stays a plain call.
    let created = client
        .call_tool_once(
            CallToolRequestParams::new("create_pause_request").with_arguments(
                json!({"recipient": "+13128471928", "message": "Refund order 5521 in full?",
                       "options": ["Refund", "Decline"]})
                .as_object()
                .unwrap()
                .clone(),
            ),
        )
        .await
        .unwrap();
    let CallToolResponse::Complete(created) = created else {
        panic!("create is not a task: {created:?}")
    };
    let id = created.structured_content.unwrap()["pause_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Waiting for the human is a task, with no 50 s limit.
    let response = client
        .call_tool_once(
            CallToolRequestParams::new("poll_pause_request")
                .with_arguments(json!({"pause_id": id}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let CallToolResponse::Task(created_task) = response else {
        panic!("expected a task: {response:?}")
    };
    let task_id = created_task.task.task_id.clone();
    let status = |task_id: String| {
        let peer = client.peer().clone();
        async move {
            peer.get_task(GetTaskParams::new(task_id))
                .await
                .unwrap()
                .task
        }
    };
    assert_eq!(status(task_id.clone()).await.status(), TaskStatus::Working);
    until_waiting(&server).await;
    answer(&server, id.parse().unwrap(), "Refund", None).await;
    let finished = loop {
        let task = status(task_id.clone()).await;
        if task.status().is_terminal() {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let TaskPayload::Completed { result } = finished.payload else {
        panic!("the task completes: {:?}", finished.payload)
    };
    let result: CallToolResult = serde_json::from_value(Value::Object(result)).unwrap();
    assert_eq!(text(&result), "Responded: Refund");
    assert_eq!(
        result.structured_content.unwrap()["response_choice"],
        "Refund"
    );

    // request_permission too; and tasks/cancel stops a wait.
    let response = client
        .call_tool_once(
            CallToolRequestParams::new("request_permission").with_arguments(
                json!({"tool_name": "Bash", "input": {"command": "rm -rf /srv/cache"}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    let CallToolResponse::Task(permission) = response else {
        panic!("expected a task: {response:?}")
    };
    let permission_id = permission.task.task_id.clone();
    client
        .peer()
        .cancel_task(CancelTaskParams::new(permission_id.clone()))
        .await
        .unwrap();
    let cancelled = loop {
        let task = status(permission_id.clone()).await;
        if task.status().is_terminal() {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(cancelled.status(), TaskStatus::Cancelled);
    // The question is withdrawn, not left for the approver to answer in vain.
    let asked = server.client.get_path("/v1/pause?status=cancelled").await;
    assert_eq!(
        asked.body["data"][0]["message"],
        "Claude Code wants to run Bash: `rm -rf /srv/cache`. Allow?"
    );
}
