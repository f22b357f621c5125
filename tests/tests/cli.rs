//! The `pp` client commands as a script or a person uses them: the real binary against the
//! real server, exit codes, stdout and stderr.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pausepoint_api::{AuditEvent, Pause, PauseStatus};
use pausepoint_tests::{admin_create_key, pp_binary, sms_pause, Client, ServerProcess, TestServer};
use reqwest::StatusCode;
use tokio::process::Command;
use uuid::Uuid;

/// `pp ARGS` against a server, with no config file and no inherited settings.
fn pp(base: &str, key: &str, args: &[&str]) -> Command {
    let mut command = Command::new(pp_binary());
    command
        .args(args)
        .env("PAUSEPOINT_URL", base)
        .env("PAUSEPOINT_API_KEY", key)
        .env(
            "PAUSEPOINT_CONFIG",
            "/nonexistent/pausepoint-test-config.json",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(mut command: Command) -> Ran {
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap()
        .unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Waits until a pause with this message exists, and returns it.
async fn pause_asked(client: &Client, message: &str) -> Pause {
    for _ in 0..500 {
        let list = client.get_path("/v1/pause?limit=100").await;
        let pauses: Vec<Pause> = serde_json::from_value(list.body["data"].clone()).unwrap();
        if let Some(pause) = pauses.into_iter().find(|p| p.message == message) {
            return pause;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no pause {message:?} was created");
}

/// Waits until some long-poll is waiting on the pause.
async fn until_waiting(server: &TestServer) {
    while server.app.pauses().watching() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn ask_without_wait_prints_the_id_alone() {
    let server = TestServer::start().await;
    let ran = run(pp(
        &server.client.base,
        &server.client.key,
        &[
            "ask",
            "Wire $8,400 to Meridian?",
            "--to",
            "+1 (312) 847-1928",
            "-o",
            "Approve",
            "-o",
            "Reject",
            "--default",
            "Reject",
            "--timeout",
            "4h",
            "--meta",
            "amount=8400",
            "--meta",
            "vendor=Meridian Supplies",
            "--allow-text",
        ],
    ))
    .await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let id: Uuid = ran.stdout.trim().parse().unwrap();
    let pause = server.client.get(id).await.pause(StatusCode::OK);
    assert_eq!(pause.recipient, "+13128471928");
    assert_eq!(pause.channel.as_str(), "sms");
    assert_eq!(pause.options, ["Approve", "Reject"]);
    assert_eq!(pause.timeout_default.as_deref(), Some("Reject"));
    assert!(pause.allow_text_response);
    assert_eq!(
        pause.expires_at.duration_since(pause.created_at),
        jiff::SignedDuration::from_hours(4)
    );
    let metadata = serde_json::Value::Object(pause.metadata.unwrap());
    assert_eq!(
        metadata,
        serde_json::json!({"amount": 8400, "vendor": "Meridian Supplies"})
    );
}

#[tokio::test]
async fn ask_wait_prints_the_humans_choice_and_exits_0() {
    let server = TestServer::start().await;
    let asking = tokio::spawn(run(pp(
        &server.client.base,
        &server.client.key,
        &[
            "ask",
            "Deploy build #4712 to production?",
            "--to",
            "ops@example.com",
            "-o",
            "Deploy",
            "-o",
            "Abort",
            "--wait",
        ],
    )));
    let pause = pause_asked(&server.client, "Deploy build #4712 to production?").await;
    assert_eq!(pause.channel.as_str(), "email", "inferred from the address");
    until_waiting(&server).await;
    let page = reqwest::Client::new()
        .post(server.link(&pause))
        .form(&[("choice", "Deploy")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let ran = asking.await.unwrap();
    assert_eq!(
        (ran.code, ran.stdout.as_str()),
        (0, "Deploy\n"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.is_empty(),
        "nothing on stderr when it is not a terminal: {}",
        ran.stderr
    );
}

#[tokio::test]
async fn ask_wait_exits_10_with_the_default_on_timeout() {
    let server = TestServer::start().await;
    let ran = run(pp(
        &server.client.base,
        &server.client.key,
        &[
            "ask",
            "Approve?",
            "--to",
            "+15550100",
            "-o",
            "Yes",
            "-o",
            "No",
            "--default",
            "No",
            "--timeout",
            "1s",
            "--wait",
        ],
    ))
    .await;
    assert_eq!(
        (ran.code, ran.stdout.as_str()),
        (10, "No\n"),
        "{}",
        ran.stderr
    );
    let ran = run(pp(
        &server.client.base,
        &server.client.key,
        &[
            "ask",
            "Approve?",
            "--to",
            "+15550100",
            "-o",
            "Yes",
            "-o",
            "No",
            "--timeout",
            "1s",
            "--wait",
        ],
    ))
    .await;
    assert_eq!(
        (ran.code, ran.stdout.as_str()),
        (10, ""),
        "no default, nothing on stdout"
    );
}

#[tokio::test]
async fn wait_exits_11_when_another_process_cancels() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let id = pause.pause_id.to_string();
    let waiting = tokio::spawn(run(pp(
        &server.client.base,
        &server.client.key,
        &["wait", &id],
    )));
    until_waiting(&server).await;
    let cancelled = run(pp(
        &server.client.base,
        &server.client.key,
        &["cancel", &id],
    ))
    .await;
    assert_eq!(cancelled.code, 0);
    assert_eq!(cancelled.stdout, format!("Cancelled pause {id}.\n"));
    let ran = waiting.await.unwrap();
    assert_eq!((ran.code, ran.stdout.as_str()), (11, ""));
    // Cancelling again says why not.
    let again = run(pp(
        &server.client.base,
        &server.client.key,
        &["cancel", &id],
    ))
    .await;
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("already cancelled"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn ask_wait_rides_out_a_kill_9_and_restart_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "deploy", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let port = server.port;
    let base = server.base.clone();
    let asking = tokio::spawn(run(pp(
        &base,
        &key,
        &[
            "ask",
            "Roll back the database migration?",
            "--to",
            "+15550100",
            "-o",
            "Roll back",
            "-o",
            "Keep",
            "--wait",
        ],
    )));
    let client = Client::new(&base, &key);
    let pause = pause_asked(&client, "Roll back the database migration?").await;
    client.delivered(pause.pause_id).await;
    let printed = server.printed();
    server.kill().await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    let server = ServerProcess::start(&database, port).await;
    let link = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Answer at "))
        .unwrap()
        .to_owned();
    let page = reqwest::Client::new()
        .post(&link)
        .form(&[("choice", "Roll back")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let ran = asking.await.unwrap();
    assert_eq!(
        (ran.code, ran.stdout.as_str()),
        (0, "Roll back\n"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("cannot reach PausePoint"),
        "it says once that it lost the server: {}",
        ran.stderr
    );
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    server.terminate().await;
}

#[tokio::test]
async fn status_list_and_audit_as_tables_and_json() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.clone(), server.client.key.clone());
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut body = sms_pause(None);
        body["message"] = serde_json::json!(format!("Question number {i}"));
        ids.push(
            server
                .client
                .create(body)
                .await
                .pause(StatusCode::CREATED)
                .pause_id,
        );
    }
    server.client.cancel(ids[0]).await.pause(StatusCode::OK);
    let id = ids[1].to_string();

    let status = run(pp(&base, &key, &["status", &id])).await;
    assert_eq!(status.code, 0);
    for expected in [
        "pause_id",
        &id,
        "pending",
        "+13128471928 (sms)",
        "Question number 1",
        "Approve | Reject",
        "expires",
    ] {
        assert!(
            status.stdout.contains(expected),
            "{expected} missing from:\n{}",
            status.stdout
        );
    }
    let json = run(pp(&base, &key, &["status", &id, "--json"])).await;
    let pause: Pause = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(pause.pause_id, ids[1]);

    let list = run(pp(&base, &key, &["list"])).await;
    assert_eq!(list.code, 0);
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert!(rows[0].contains("PAUSE ID") && rows[0].contains("STATUS"));
    assert_eq!(rows.len(), 4, "{}", list.stdout);
    assert!(rows[1].contains(&ids[2].to_string()), "newest first");
    let pending = run(pp(&base, &key, &["list", "--status", "pending", "--json"])).await;
    let pending: Vec<Pause> = serde_json::from_str(&pending.stdout).unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|p| p.status == PauseStatus::Pending));
    let all = run(pp(
        &base,
        &key,
        &["list", "--limit", "1", "--all", "--json"],
    ))
    .await;
    assert_eq!(
        serde_json::from_str::<Vec<Pause>>(&all.stdout)
            .unwrap()
            .len(),
        3,
        "every page"
    );

    let audit = run(pp(&base, &key, &["audit", "--pause", &ids[0].to_string()])).await;
    assert!(
        audit.stdout.contains("pause.created") && audit.stdout.contains("pause.cancelled"),
        "{}",
        audit.stdout
    );
    let events = run(pp(
        &base,
        &key,
        &["audit", "--event", "pause.created", "--json"],
    ))
    .await;
    let events: Vec<AuditEvent> = serde_json::from_str(&events.stdout).unwrap();
    assert_eq!(events.len(), 3);
    let recent = run(pp(&base, &key, &["audit", "--since", "1h", "--json"])).await;
    assert!(!serde_json::from_str::<Vec<AuditEvent>>(&recent.stdout)
        .unwrap()
        .is_empty());

    // The newer filters: by channel and creation time, and the audit by actor.
    let listed = |args: &'static [&'static str]| {
        let (base, key) = (base.clone(), key.clone());
        async move {
            let ran = run(pp(&base, &key, args)).await;
            assert_eq!(ran.code, 0, "{}", ran.stderr);
            serde_json::from_str::<Vec<Pause>>(&ran.stdout)
                .unwrap()
                .len()
        }
    };
    assert_eq!(listed(&["list", "--channel", "sms", "--json"]).await, 3);
    assert_eq!(listed(&["list", "--channel", "email", "--json"]).await, 0);
    assert_eq!(listed(&["list", "--since", "1h", "--json"]).await, 3);
    assert_eq!(
        listed(&["list", "--since", "2999-01-01T00:00:00Z", "--json"]).await,
        0
    );
    let by_system = run(pp(&base, &key, &["audit", "--actor", "system", "--json"])).await;
    let by_system: Vec<AuditEvent> = serde_json::from_str(&by_system.stdout).unwrap();
    assert!(!by_system.is_empty());
    assert!(by_system.iter().all(|e| e.actor == "system"));
}

#[tokio::test]
async fn audit_exports_and_verifies() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.clone(), server.client.key.clone());
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    server.client.delivered(pause.pause_id).await;
    server
        .client
        .cancel(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    let expected = server.client.audit("").await;

    let jsonl = run(pp(&base, &key, &["audit", "--export", "jsonl"])).await;
    assert_eq!(jsonl.code, 0);
    let exported: Vec<AuditEvent> = jsonl
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported, expected);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.csv");
    let csv = run(pp(
        &base,
        &key,
        &["audit", "--export", "csv", "-o", file.to_str().unwrap()],
    ))
    .await;
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let mut reader = csv::Reader::from_path(&file).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "seq",
            "event_id",
            "occurred_at",
            "event",
            "pause_id",
            "actor",
            "data",
            "prev_hash",
            "hash"
        ]
    );
    assert_eq!(reader.records().count(), expected.len());

    let verify = run(pp(&base, &key, &["audit", "--verify", "--full"])).await;
    assert_eq!(verify.code, 0);
    assert!(
        verify.stdout.starts_with(&format!(
            "The audit chain is intact: {} events",
            expected.len()
        )),
        "{}",
        verify.stdout
    );
}

#[tokio::test]
async fn each_error_is_one_clear_line() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.as_str(), server.client.key.as_str());
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unknown = Uuid::now_v7().to_string();
    let cases: Vec<(Command, &str)> = vec![
        (
            pp(&nowhere, key, &["list"]),
            "is `pp server` running there?",
        ),
        (
            pp(base, "pp_live_wrongwrongwrongwrongwrongwrong00", &["list"]),
            "the API key was refused",
        ),
        (
            pp(base, key, &["status", &unknown]),
            "no pause with this id",
        ),
        (
            pp(
                base,
                key,
                &["ask", "Go?", "--to", "+15550100", "-o", "Only"],
            ),
            "options: give 2 to 5 options",
        ),
        (
            pp(
                base,
                key,
                &["ask", "Go?", "--to", "not a number", "-o", "A", "-o", "B"],
            ),
            "recipient:",
        ),
        (
            pp(
                base,
                key,
                &[
                    "ask",
                    "Go?",
                    "--to",
                    "+15550100",
                    "-o",
                    "A",
                    "-o",
                    "B",
                    "--default",
                    "C",
                ],
            ),
            "timeout_default",
        ),
    ];
    for (command, expected) in cases {
        let ran = run(command).await;
        assert_eq!(ran.code, 1, "{}", ran.stderr);
        assert!(
            ran.stderr.starts_with("error: ") && ran.stderr.contains(expected),
            "{expected}: {}",
            ran.stderr
        );
        assert_eq!(
            ran.stderr.trim_end().lines().count(),
            1,
            "one line: {}",
            ran.stderr
        );
        assert!(ran.stdout.is_empty());
    }
    let mut no_key = pp(base, "", &["list"]);
    no_key.env_remove("PAUSEPOINT_API_KEY");
    let ran = run(no_key).await;
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("no API key") && ran.stderr.contains("pp login"),
        "{}",
        ran.stderr
    );

    for usage in [
        &["ask", "Go?"][..],
        &["ask", "Go?", "--to", "x", "-o", "A", "--timeout", "soon"],
        &["status", "not-an-id"],
        &["list", "--status", "done"],
    ] {
        let ran = run(pp(base, key, usage)).await;
        assert_eq!(ran.code, 2, "{usage:?}: {}", ran.stderr);
    }
}

#[tokio::test]
async fn login_saves_the_url_and_key_privately() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pp/config.json");
    let mut login = pp(
        "http://unused",
        "",
        &[
            "login",
            "--url",
            &server.client.base,
            "--key",
            &server.client.key,
        ],
    );
    login
        .env("PAUSEPOINT_CONFIG", &config)
        .env_remove("PAUSEPOINT_URL")
        .env_remove("PAUSEPOINT_API_KEY");
    let ran = run(login).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        !ran.stdout.contains(&server.client.key),
        "the key is not echoed whole"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let mut list = pp("http://unused", "", &["list", "--json"]);
    list.env("PAUSEPOINT_CONFIG", &config)
        .env_remove("PAUSEPOINT_URL")
        .env_remove("PAUSEPOINT_API_KEY");
    assert_eq!(run(list).await.code, 0);

    let mut bad = pp(
        "http://unused",
        "",
        &[
            "login",
            "--url",
            &server.client.base,
            "--key",
            "pp_live_nope",
        ],
    );
    bad.env("PAUSEPOINT_CONFIG", dir.path().join("other.json"));
    let ran = run(bad).await;
    assert_eq!(ran.code, 1);
    assert!(!Path::new(&dir.path().join("other.json")).exists());
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let ran = run(pp("http://unused", "", &["completions", shell])).await;
        assert_eq!(ran.code, 0);
        assert!(ran.stdout.contains("pp") && ran.stdout.len() > 1000);
    }
}

#[tokio::test]
async fn the_readme_shell_example_runs_as_written() {
    let server = TestServer::start().await;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme
        .find("choice=$(pp ask")
        .expect("the README shows the pp ask example");
    let example: String = readme[start..]
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    let script = format!("set -e\n{example}\necho \"decided: $choice\"\n");
    let bin_dir = pp_binary().parent().unwrap().to_owned();
    let mut shell = Command::new("bash");
    shell
        .arg("-c")
        .arg(&script)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("PAUSEPOINT_URL", &server.client.base)
        .env("PAUSEPOINT_API_KEY", &server.client.key)
        .env("PAUSEPOINT_CONFIG", "/nonexistent/config.json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let running = tokio::spawn(run(shell));
    let pause = pause_asked(&server.client, "Deploy build #4712 to production?").await;
    until_waiting(&server).await;
    reqwest::Client::new()
        .post(server.link(&pause))
        .form(&[("choice", "Deploy")])
        .send()
        .await
        .unwrap();
    let ran = running.await.unwrap();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("decided: Deploy"), "{}", ran.stdout);
}

#[tokio::test]
async fn ctrl_c_stops_waiting_and_says_how_to_resume_or_cancels() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.clone(), server.client.key.clone());
    for cancel in [false, true] {
        let pause = server
            .client
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
        let id = pause.pause_id.to_string();
        let mut args = vec!["wait", id.as_str()];
        if cancel {
            args.push("--cancel-on-interrupt");
        }
        let child = pp(&base, &key, &args).spawn().unwrap();
        until_waiting(&server).await;
        let pid = child.id().unwrap().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        let status = server.client.status(pause.pause_id).await;
        if cancel {
            assert_eq!(output.status.code(), Some(11), "{stderr}");
            assert!(
                stderr.contains(&format!("Cancelled pause {id}")),
                "{stderr}"
            );
            assert_eq!(status, PauseStatus::Cancelled);
        } else {
            assert_eq!(output.status.code(), Some(130), "{stderr}");
            assert!(stderr.contains(&format!("pp wait {id}")), "{stderr}");
            assert_eq!(status, PauseStatus::Pending);
        }
        assert!(output.stdout.is_empty());
        while server.app.pauses().watching() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The auditor's and the payment service's commands: the public key from `pp admin
/// audit-key`, a checkpoint kept with `pp audit checkpoint`, a bundle verified offline
/// (and a tampered copy refused), and a receipt checked against the message it approves.
#[tokio::test]
async fn an_auditor_verifies_offline_and_a_receipt_proves_the_approval() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.clone(), server.client.key.clone());
    let dir = server.dir().to_owned();
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    server.client.delivered(pause.pause_id).await;
    server.respond(pause.pause_id, "Approve").await;

    let audit_key = run(pp(
        &base,
        &key,
        &["admin", "audit-key", "--db", &server.database],
    ))
    .await;
    assert_eq!(audit_key.code, 0, "{}", audit_key.stderr);
    let keys = pausepoint_api::proof::Jwks::parse(&audit_key.stdout).unwrap();
    assert_eq!(keys.keys.len(), 1);
    assert!(audit_key.stderr.contains("pp audit verify"));
    let key_file = dir.join("audit-key.json");
    std::fs::write(&key_file, &audit_key.stdout).unwrap();

    let checkpoint = run(pp(&base, &key, &["audit", "checkpoint"])).await;
    assert_eq!(checkpoint.code, 0, "{}", checkpoint.stderr);
    let checkpoint_file = dir.join("checkpoints.jsonl");
    std::fs::write(&checkpoint_file, &checkpoint.stdout).unwrap();

    let export = dir.join("audit.jsonl");
    let exported = run(pp(
        &base,
        &key,
        &[
            "audit",
            "--export",
            "jsonl",
            "--bundle",
            "-o",
            &export.display().to_string(),
        ],
    ))
    .await;
    assert_eq!(exported.code, 0, "{}", exported.stderr);

    let verify = |file: &Path| {
        pp(
            "http://127.0.0.1:9",
            "pp_live_nobody",
            &[
                "audit",
                "verify",
                "--file",
                &file.display().to_string(),
                "--public-key",
                &key_file.display().to_string(),
                "--checkpoint",
                &checkpoint_file.display().to_string(),
            ],
        )
    };
    // No server is asked: the URL above leads nowhere.
    let offline = run(verify(&export)).await;
    assert_eq!(offline.code, 0, "{}{}", offline.stdout, offline.stderr);
    assert!(
        offline.stdout.starts_with("The audit chain is intact"),
        "{}",
        offline.stdout
    );
    assert!(
        offline
            .stdout
            .contains("1 checkpoints kept outside the log agree"),
        "{}",
        offline.stdout
    );
    assert!(
        offline.stdout.contains("1 pauses agree"),
        "{}",
        offline.stdout
    );

    // The same file with the decision changed is refused, naming the event.
    let text = std::fs::read_to_string(&export).unwrap();
    let responded = text
        .lines()
        .find(|l| l.contains("\"pause.responded\""))
        .unwrap()
        .to_owned();
    let seq = serde_json::from_str::<AuditEvent>(&responded).unwrap().seq;
    let tampered = dir.join("tampered.jsonl");
    std::fs::write(
        &tampered,
        text.replace(&responded, &responded.replace("\"Approve\"", "\"Reject\"")),
    )
    .unwrap();
    let refused = run(verify(&tampered)).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains(&format!("broken at event {seq}")),
        "{}",
        refused.stderr
    );

    let online = run(pp(
        &base,
        &key,
        &[
            "audit",
            "verify",
            "--checkpoint",
            &checkpoint_file.display().to_string(),
        ],
    ))
    .await;
    assert_eq!(online.code, 0, "{}", online.stderr);

    // The receipt from `pp status --json` proves the approval of exactly this message.
    let status = run(pp(
        &base,
        &key,
        &["status", &pause.pause_id.to_string(), "--json"],
    ))
    .await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let shown: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let receipt = shown["receipt"]
        .as_str()
        .expect("pp status --json shows the receipt");
    let check = |message: &str| {
        pp(
            &base,
            &key,
            &[
                "receipt",
                "verify",
                receipt,
                "--public-key",
                &key_file.display().to_string(),
                "--message",
                message,
            ],
        )
    };
    let holds = run(check("Wire $8,400 to Meridian?")).await;
    assert_eq!(holds.code, 0, "{}", holds.stderr);
    assert!(
        holds
            .stdout
            .contains(&format!("pause {} responded \"Approve\"", pause.pause_id)),
        "{}",
        holds.stdout
    );
    let other = run(check("Wire $84,000 to Meridian?")).await;
    assert_eq!(other.code, 1);
    assert!(other.stderr.contains("another message"), "{}", other.stderr);
}

// `pp hook claude-code`: the real command hook, with Claude Code's documented input on
// stdin and its documented answers on stdout.

/// A PreToolUse event as Claude Code writes it on the hook's stdin.
fn hook_event(command: &str, tool_use_id: &str) -> serde_json::Value {
    serde_json::json!({
        "session_id": "sess-cli",
        "transcript_path": "/home/ana/.claude/projects/shop/sess-cli.jsonl",
        "cwd": "/home/ana/work/shop",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "clean the build"},
        "tool_use_id": tool_use_id,
    })
}

/// Runs `pp hook claude-code ARGS` with `stdin` and the approver +13128471928.
async fn hook(base: &str, key: &str, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Ran {
    use tokio::io::AsyncWriteExt;
    let mut all = vec!["hook", "claude-code"];
    all.extend_from_slice(args);
    let mut command = pp(base, key, &all);
    command
        .env("PAUSEPOINT_APPROVER", "+13128471928")
        .stdin(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The PreToolUse decision and reason the hook printed.
fn pre_tool_use(ran: &Ran) -> (String, String) {
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let answer: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    let output = &answer["hookSpecificOutput"];
    assert_eq!(output["hookEventName"], "PreToolUse");
    (
        output["permissionDecision"].as_str().unwrap().to_owned(),
        output["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

async fn answer_pause(server: &TestServer, pause: &Pause, choice: &str, note: Option<&str>) {
    server
        .app
        .pauses()
        .respond(
            server.project_id,
            pausepoint_server::ids::PauseId::from(pause.pause_id),
            choice,
            note,
        )
        .await
        .unwrap();
}

const QUESTION: &str =
    "Claude Code wants to run Bash in ~/work/shop: `rm -rf build/` (clean the build). Allow?";

#[tokio::test]
async fn the_claude_code_hook_allows_denies_with_the_note_and_remembers_for_an_hour() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.clone(), server.client.key.clone());
    let event = hook_event("rm -rf build/", "toolu_cli_1").to_string();
    let asking = {
        let (base, key, event) = (base.clone(), key.clone(), event.clone());
        tokio::spawn(async move { hook(&base, &key, &[], &[], event.as_bytes()).await })
    };
    let pause = pause_asked(&server.client, QUESTION).await;
    assert_eq!(pause.options, ["Allow", "Allow for 1 hour", "Deny"]);
    answer_pause(&server, &pause, "Allow", None).await;
    let (decision, reason) = pre_tool_use(&asking.await.unwrap());
    assert_eq!(decision, "allow");
    assert!(reason.contains("+13128471928"), "{reason}");

    // Deny, with a note: the note is the reason Claude reads.
    let event = hook_event("git push --force", "toolu_cli_2").to_string();
    let asking = {
        let (base, key, event) = (base.clone(), key.clone(), event.clone());
        tokio::spawn(async move { hook(&base, &key, &[], &[], event.as_bytes()).await })
    };
    let pause = pause_asked(
        &server.client,
        "Claude Code wants to run Bash in ~/work/shop: `git push --force` (clean the build). Allow?",
    )
    .await;
    answer_pause(&server, &pause, "Deny", Some("never force-push main")).await;
    let ran = asking.await.unwrap();
    assert_eq!(
        pre_tool_use(&ran),
        (
            "deny".to_owned(),
            "Denied by +13128471928: never force-push main".to_owned()
        )
    );

    // "Allow for 1 hour": the same call later is allowed without a question.
    let event = hook_event("make deploy", "toolu_cli_3").to_string();
    let asking = {
        let (base, key, event) = (base.clone(), key.clone(), event.clone());
        tokio::spawn(async move { hook(&base, &key, &[], &[], event.as_bytes()).await })
    };
    let pause = pause_asked(
        &server.client,
        "Claude Code wants to run Bash in ~/work/shop: `make deploy` (clean the build). Allow?",
    )
    .await;
    answer_pause(&server, &pause, "Allow for 1 hour", None).await;
    assert_eq!(pre_tool_use(&asking.await.unwrap()).0, "allow");
    let again = hook_event("make deploy", "toolu_cli_4").to_string();
    let ran = hook(&base, &key, &[], &[], again.as_bytes()).await;
    let (decision, reason) = pre_tool_use(&ran);
    assert_eq!(decision, "allow");
    assert!(reason.starts_with("Allowed by rule "), "{reason}");
    let pauses = server.client.get_path("/v1/pause?limit=100").await;
    assert_eq!(pauses.body["data"].as_array().unwrap().len(), 3);

    // `pp rules list` shows it; `pp rules revoke` ends it.
    let listed = run(pp(&base, &key, &["rules", "list", "--json"])).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let rules: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(rules.as_array().unwrap().len(), 1);
    assert_eq!(rules[0]["status"], "active");
    let id = rules[0]["rule_id"].as_str().unwrap().to_owned();
    let table = run(pp(&base, &key, &["rules", "list"])).await;
    assert!(table.stdout.contains(&id) && table.stdout.contains("make deploy"));
    let revoked = run(pp(&base, &key, &["rules", "revoke", &id])).await;
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert!(
        revoked.stdout.contains("Revoked rule"),
        "{}",
        revoked.stdout
    );
    let twice = run(pp(&base, &key, &["rules", "revoke", &id])).await;
    assert_eq!(twice.code, 1);
    assert!(
        twice.stderr.contains("already expired or been revoked"),
        "{}",
        twice.stderr
    );
}

#[tokio::test]
async fn the_claude_code_hook_denies_when_nobody_answers_or_nobody_is_there() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.clone(), server.client.key.clone());
    // Nobody answers in time.
    let event = hook_event("terraform destroy", "toolu_cli_5").to_string();
    let ran = hook(
        &base,
        &key,
        &[],
        &[("PAUSEPOINT_APPROVAL_TIMEOUT", "1s")],
        event.as_bytes(),
    )
    .await;
    let (decision, reason) = pre_tool_use(&ran);
    assert_eq!(decision, "deny");
    assert!(reason.contains("did not answer within 1s"), "{reason}");

    // The key is refused: deny, saying so, without trying again.
    let ran = hook(&base, "pp_live_wrong", &[], &[], event.as_bytes()).await;
    let (decision, reason) = pre_tool_use(&ran);
    assert_eq!(decision, "deny");
    assert!(reason.contains("refused the API key"), "{reason}");
    assert!(!ran.stdout.contains("pp_live_wrong") && !ran.stderr.contains("pp_live_wrong"));

    // No server there: deny; with --fail-open, hand the choice back to the local prompt.
    let nobody = "http://127.0.0.1:1";
    let (denied, asked) = tokio::join!(
        hook(nobody, &key, &[], &[], event.as_bytes()),
        hook(nobody, &key, &["--fail-open"], &[], event.as_bytes()),
    );
    let (decision, reason) = pre_tool_use(&denied);
    assert_eq!(decision, "deny");
    assert!(reason.contains("cannot reach PausePoint"), "{reason}");
    let (decision, reason) = pre_tool_use(&asked);
    assert_eq!(decision, "ask");
    assert!(reason.contains("Claude Code's own prompt"), "{reason}");
}

#[tokio::test]
async fn the_claude_code_hook_blocks_input_it_cannot_read() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.clone(), server.client.key.clone());
    for (input, says) in [
        (&b"{not json"[..], "not JSON"),
        (
            &br#"{"hook_event_name":"PreToolUse","tool_input":{}}"#[..],
            "tool_name",
        ),
        (
            &br#"{"hook_event_name":"Stop"}"#[..],
            "PreToolUse and PermissionRequest",
        ),
        (&b""[..], "not JSON"),
    ] {
        let ran = hook(&base, &key, &[], &[], input).await;
        assert_eq!(ran.code, 2, "{}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{}", ran.stdout);
        assert!(ran.stderr.contains(says), "{}", ran.stderr);
    }
    let pauses = server.client.get_path("/v1/pause").await;
    assert_eq!(pauses.body["data"], serde_json::json!([]));
}

#[tokio::test]
async fn the_claude_code_hook_rides_out_a_kill_9_and_restart_and_finds_the_same_question() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "claude", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let port = server.port;
    let base = server.base.clone();
    let event = hook_event("rm -rf build/", "toolu_restart").to_string();
    let asking = {
        let (base, key, event) = (base.clone(), key.clone(), event.clone());
        tokio::spawn(async move { hook(&base, &key, &[], &[], event.as_bytes()).await })
    };
    let client = Client::new(&base, &key);
    let pause = pause_asked(&client, QUESTION).await;
    client.delivered(pause.pause_id).await;
    let printed = server.printed();
    server.kill().await;

    // Back within the hook's 10 s of asking again: the same question, not a second one.
    let server = ServerProcess::start(&database, port).await;
    let link = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Answer at "))
        .unwrap()
        .to_owned();
    let page = reqwest::Client::new()
        .post(&link)
        .form(&[("choice", "Allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let ran = asking.await.unwrap();
    assert_eq!(pre_tool_use(&ran).0, "allow", "{}", ran.stderr);
    let pauses = client.get_path("/v1/pause").await;
    assert_eq!(pauses.body["data"].as_array().unwrap().len(), 1);
    server.terminate().await;
}

#[tokio::test]
async fn ask_puts_a_question_to_several_approvers_and_status_shows_their_votes() {
    let server = TestServer::start().await;
    let (base, key) = (server.client.base.clone(), server.client.key.clone());
    let asked = run(pp(
        &base,
        &key,
        &[
            "ask",
            "Wire $84,000 to Meridian Freight?",
            "-o",
            "Approve",
            "-o",
            "Reject",
            "--to",
            "dana@example.com",
            "--to",
            "+1 (312) 555-0123",
            "--quorum",
            "Approve=2",
            "--escalate",
            "30m:cfo@example.com",
            "--remind",
            "15m",
            "--timeout",
            "4h",
            "--json",
        ],
    ))
    .await;
    assert_eq!(asked.code, 0, "{}", asked.stderr);
    let pause: Pause = serde_json::from_str(&asked.stdout).unwrap();
    let approvers: Vec<(&str, &str, u32)> = pause
        .approvers
        .iter()
        .map(|a| (a.recipient.as_str(), a.channel.as_str(), a.tier))
        .collect();
    assert_eq!(
        approvers,
        [
            ("dana@example.com", "email", 0),
            ("+13125550123", "sms", 0),
            ("cfo@example.com", "email", 1)
        ]
    );
    assert_eq!(pause.quorum.as_ref().unwrap().count, 2);
    assert_eq!(pause.remind_every_seconds, Some(900));

    let link = server.approver_link(&pause, 1);
    let tapped = reqwest::Client::new()
        .post(&link)
        .form(&[("choice", "Approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(tapped.status(), StatusCode::OK);

    let status = run(pp(&base, &key, &["status", &pause.pause_id.to_string()])).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    for expected in [
        "APPROVER",
        "dana@example.com (email)",
        "+13125550123 (sms)",
        "cfo@example.com (email)",
        "Approve needs 2 votes",
        "every 15m",
    ] {
        assert!(
            status.stdout.contains(expected),
            "{expected:?} in {}",
            status.stdout
        );
    }
    let sms_row = status
        .stdout
        .lines()
        .find(|line| line.contains("+13125550123"))
        .unwrap();
    assert!(sms_row.contains("Approve"), "{sms_row}");

    // A quorum the approvers can never reach is refused before anything is asked.
    let refused = run(pp(
        &base,
        &key,
        &[
            "ask",
            "Deploy?",
            "-o",
            "Yes",
            "-o",
            "No",
            "--to",
            "a@example.com",
            "--quorum",
            "Yes=2",
        ],
    ))
    .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("quorum.count"),
        "{}",
        refused.stderr
    );
}
