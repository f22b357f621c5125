//! Shared set-up for the end-to-end tests: the real server on `127.0.0.1:0` with a real
//! SQLite file, either in this process ([`TestServer`]) or as the real `pp` binary
//! ([`ServerProcess`]), and typed request helpers that return what a client would see.

#![allow(clippy::unwrap_used)]

pub mod receivers;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pausepoint_api::{AuditEvent, DeliveryStatus, Pause};
use pausepoint_server::domain::keys::{self, DEFAULT_PROJECT};
use pausepoint_server::domain::links::LinkTarget;
use pausepoint_server::domain::pauses;
use pausepoint_server::ids::{PauseId, ProjectId};
use pausepoint_server::store::Actor;
use pausepoint_server::{App, Config};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// What a client saw: the status code and the JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The body as a Pause, after checking the status.
    pub fn pause(&self, expected: StatusCode) -> Pause {
        assert_eq!(
            self.status, expected,
            "unexpected status; body: {}",
            self.body
        );
        serde_json::from_value(self.body.clone()).unwrap()
    }

    /// Checks an error reply: status, code and field.
    pub fn assert_error(&self, status: StatusCode, code: &str, field: Option<&str>) {
        assert_eq!(self.status, status, "body: {}", self.body);
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "body: {}", self.body);
        assert_eq!(error["field"].as_str(), field, "body: {}", self.body);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error needs a message: {}",
            self.body
        );
    }
}

/// An HTTP client of one server, acting with one API key.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, key: &str) -> Client {
        Client {
            base: base.to_owned(),
            key: key.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// The same server with another key.
    pub fn with_key(&self, key: &str) -> Client {
        Client {
            key: key.to_owned(),
            ..self.clone()
        }
    }

    /// Sends a request with the key and an optional raw body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn create(&self, body: Value) -> Reply {
        self.send(
            Method::POST,
            "/v1/pause",
            Some(body.to_string().into_bytes()),
            &[],
        )
        .await
    }

    pub async fn create_with_key(&self, body: Value, idempotency_key: &str) -> Reply {
        self.send(
            Method::POST,
            "/v1/pause",
            Some(body.to_string().into_bytes()),
            &[("Idempotency-Key", idempotency_key)],
        )
        .await
    }

    pub async fn get(&self, id: Uuid) -> Reply {
        self.send(Method::GET, &format!("/v1/pause/{id}"), None, &[])
            .await
    }

    /// Where the pause stands now.
    pub async fn status(&self, id: Uuid) -> pausepoint_api::PauseStatus {
        self.get(id).await.pause(StatusCode::OK).status
    }

    pub async fn wait(&self, id: Uuid, seconds: u64) -> Reply {
        self.send(
            Method::GET,
            &format!("/v1/pause/{id}?wait={seconds}"),
            None,
            &[],
        )
        .await
    }

    pub async fn cancel(&self, id: Uuid) -> Reply {
        self.send(Method::POST, &format!("/v1/pause/{id}/cancel"), None, &[])
            .await
    }

    /// The pause once its delivery is no longer pending (sent, logged, failed or skipped).
    pub async fn delivered(&self, id: Uuid) -> Pause {
        for _ in 0..1000 {
            let pause = self.get(id).await.pause(StatusCode::OK);
            if pause
                .delivery
                .as_ref()
                .is_some_and(|d| d.status != DeliveryStatus::Pending)
            {
                return pause;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pause = self.get(id).await.body;
        panic!("the delivery of {id} never settled: {pause}");
    }

    pub async fn get_path(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, &[]).await
    }

    /// Every audit event of the key's project matching `query` (such as `pause_id=…`).
    pub async fn audit(&self, query: &str) -> Vec<AuditEvent> {
        let reply = self
            .get_path(&format!("/v1/audit?limit=1000&{query}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        serde_json::from_value(reply.body["data"].clone()).unwrap()
    }
}

/// The pause without its deliveries (its own and its approvers'), which the delivery
/// worker changes on its own time.
pub fn without_delivery(pause: &Pause) -> Pause {
    Pause {
        delivery: None,
        approvers: pause
            .approvers
            .iter()
            .map(|approver| pausepoint_api::Approver {
                delivery: None,
                ..approver.clone()
            })
            .collect(),
        ..pause.clone()
    }
}

/// True for the audit events of delivery attempts, which come on the worker's own time.
pub fn is_delivery_event(event: &AuditEvent) -> bool {
    matches!(
        event.event,
        pausepoint_api::AuditEventKind::PauseNotified
            | pausepoint_api::AuditEventKind::PauseNotificationFailed
    )
}

/// A create body like the spec's SMS example, with a short timeout when given.
pub fn sms_pause(timeout_seconds: Option<u64>) -> Value {
    let mut body = json!({
        "recipient": "+1 (312) 847-1928",
        "channel": "sms",
        "message": "Wire $8,400 to Meridian?",
        "options": ["Approve", "Reject"],
        "timeout_default": "Reject",
    });
    if let Some(seconds) = timeout_seconds {
        body["timeout_seconds"] = json!(seconds);
    }
    body
}

/// Which database the suites run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend of this test binary: the `api_postgres` suite runs the API suite again on
/// PostgreSQL; everything else runs on SQLite.
pub fn backend() -> Backend {
    let exe = std::env::current_exe().unwrap();
    let name = exe.file_name().unwrap().to_string_lossy();
    if name.starts_with("api_postgres") || name.starts_with("postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Says, where the person running `cargo test` sees it, that this test binary skips its
/// tests and why. It writes to the process's stderr directly: `eprintln!` inside a test is
/// captured and shown only when the test fails, which would let a suite pass unseen. Once
/// per binary.
pub fn skipped(why: &str) {
    use std::io::Write;
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let suite = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .map(|stem| stem.split('-').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "\n    SKIPPED: the {suite} suite does not run here: {why}\n"
        );
    });
}

/// Where the PostgreSQL suites look when `PAUSEPOINT_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Leaves the database at `url` (`sqlite://…` or `postgres://…`, migrated) as a later
/// version would: with a migration this version does not know, version 9999.
pub async fn apply_a_later_migration(url: &str) {
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'a later version', TRUE, $1, 0)",
    )
    .bind(vec![0u8; 48])
    .execute(&db)
    .await
    .unwrap();
    db.close().await;
}

/// A new, empty PostgreSQL database on the server named by `PAUSEPOINT_TEST_POSTGRES_URL`
/// (else [`DEFAULT_TEST_POSTGRES_URL`]), and its URL. Without a server there: a failure in
/// CI (`CI` set), a skip with a note elsewhere (None).
pub async fn fresh_postgres() -> Option<String> {
    let base = std::env::var("PAUSEPOINT_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_POSTGRES_URL.to_owned());
    let admin = match sqlx::PgPool::connect(&base).await {
        Ok(pool) => pool,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("cannot reach PostgreSQL at {base} ({e}): the PostgreSQL suites must run in CI")
        }
        Err(e) => {
            skipped(&format!(
                "no PostgreSQL at {base} ({e}); set PAUSEPOINT_TEST_POSTGRES_URL"
            ));
            return None;
        }
    };
    // Databases of earlier runs (named with their creation time) are dropped after an hour.
    let now = jiff::Timestamp::now().as_second();
    let old: Vec<String> = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE datname LIKE 'pp_test_%'",
    )
    .fetch_all(&admin)
    .await
    .unwrap_or_default();
    for name in old {
        let created: i64 = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        if now - created > 3600 {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&admin)
                .await;
        }
    }
    let name = format!("pp_test_{now}_{}", Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// The real server, in this process, on `127.0.0.1:0` and a fresh SQLite file (or, in the
/// PostgreSQL suites, a fresh PostgreSQL database).
pub struct TestServer {
    pub app: App,
    pub client: Client,
    /// The default project's id.
    pub project_id: ProjectId,
    /// The SQLite file, or the PostgreSQL URL.
    pub database: String,
    pub backend: Backend,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// The real server with settings changed by `configure` (providers, retries…).
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
        // PAUSEPOINT_TEST_LOG=debug shows the server's log while debugging a test.
        if let Ok(filter) = std::env::var("PAUSEPOINT_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().unwrap();
        let backend = backend();
        let database = match backend {
            Backend::Sqlite => dir.path().join("pausepoint.db").display().to_string(),
            Backend::Postgres => match fresh_postgres().await {
                Some(url) => url,
                None => dir.path().join("pausepoint.db").display().to_string(),
            },
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut config = Config::new(database.clone(), address);
        configure(&mut config);
        let app = App::open(config).await.unwrap();
        let key = keys::create_key(
            app.store(),
            DEFAULT_PROJECT,
            "test",
            Actor::System,
            pauses::now(),
        )
        .await
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut serving = tokio::spawn(app.clone().serve(listener, async {
            let _ = stopped.await;
        }));
        let client = Client::new(&format!("http://{address}"), &key.key);
        // A server that fails to start (a port it cannot bind, say) says why, at once,
        // instead of leaving the health check to run out.
        tokio::select! {
            () = wait_until_healthy(&client.base) => {}
            ended = &mut serving => panic!("the server stopped before it served: {ended:?}"),
        }
        TestServer {
            app,
            client,
            project_id: key.record.project_id,
            backend: if database.starts_with("postgres") {
                Backend::Postgres
            } else {
                Backend::Sqlite
            },
            database,
            stop: Some(stop),
            serving: Some(serving),
            _dir: dir,
        }
    }

    /// The link the pause's human receives.
    pub fn link(&self, pause: &Pause) -> String {
        let token = self.app.links().token_for(
            LinkTarget {
                pause_id: PauseId::from(pause.pause_id),
                approver: 0,
            },
            pause.expires_at,
        );
        pausepoint_server::domain::links::link(&self.client.base, &token)
    }

    /// The link approver `approver` of the pause received.
    pub fn approver_link(&self, pause: &Pause, approver: u32) -> String {
        let token = self.app.links().token_for(
            LinkTarget {
                pause_id: PauseId::from(pause.pause_id),
                approver,
            },
            pause.expires_at,
        );
        pausepoint_server::domain::links::link(&self.client.base, &token)
    }

    /// The pause's human (+13128471928) answers `choice`, as through the page.
    pub async fn respond(&self, id: Uuid, choice: &str) -> Pause {
        self.app
            .pauses()
            .respond(self.project_id, PauseId::from(id), choice, None)
            .await
            .unwrap()
    }

    /// A key of another project (created when missing).
    pub async fn key_for_project(&self, project: &str) -> (String, ProjectId) {
        let key = keys::create_key(
            self.app.store(),
            project,
            "test",
            Actor::System,
            pauses::now(),
        )
        .await
        .unwrap();
        (key.key, key.record.project_id)
    }

    /// A second connection to the server's database, as someone editing it by hand. What
    /// the default project's requests wrote is on its audit chain by then (on PostgreSQL
    /// the sequencer puts it there moments after the commit), as it would be by the time
    /// a person got to it.
    pub async fn behind_its_back(&self) -> sqlx::AnyPool {
        self.app
            .store()
            .settle_audit(self.project_id)
            .await
            .unwrap();
        sqlx::any::install_default_drivers();
        let url = match self.backend {
            Backend::Sqlite => format!("sqlite://{}", self.database),
            Backend::Postgres => self.database.clone(),
        };
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap()
    }

    /// The statement that removes one of the audit log's guard triggers, as an attacker
    /// with the database would.
    pub fn drop_trigger(&self, name: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("DROP TRIGGER {name};"),
            Backend::Postgres => format!("DROP TRIGGER {name} ON audit_events;"),
        }
    }

    /// The folder the test's files live in.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Shuts the server down as Ctrl-C would, and waits until it has.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.await.unwrap().unwrap();
        }
    }
}

/// Polls `/healthz` until the server answers (it binds before it serves, so this is quick).
pub async fn wait_until_healthy(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..500 {
        if let Ok(response) = http.get(format!("{base}/healthz")).send().await {
            if response.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server at {base} never became healthy");
}

/// One series of the server's `/metrics` at `base`, named as it is printed (with its
/// labels, if any): `None` while the server has not set it.
pub async fn metric(base: &str, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// The `pp` binary of this build: beside the test binary's `deps` folder, or `PP_BIN`.
/// `cargo test --workspace` builds it afresh; `cargo test -p pausepoint-tests` alone does
/// not, so build it (`cargo build -p pausepoint-cli`) after changing the server.
pub fn pp_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PP_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap()
    } else {
        dir
    };
    let binary = dir.join(format!("pp{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p pausepoint-cli` (cargo test --workspace does)",
        binary.display()
    );
    binary
}

/// Runs `pp ARGS` to completion: (exit code, stdout, stderr).
pub async fn run_pp(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(pp_binary())
        .args(args)
        .env_remove("PAUSEPOINT_DATABASE_URL")
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// `pp server` as a child process on a given database.
pub struct ServerProcess {
    child: Child,
    pub base: String,
    pub port: u16,
    /// Everything the server printed on stdout and stderr, gathered in the background.
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
    /// What it printed on stderr alone: its log.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServerProcess {
    /// Starts `pp server --db DATABASE --bind 127.0.0.1:PORT` (0 picks a port) and waits
    /// until it is healthy.
    pub async fn start(database: impl AsRef<std::ffi::OsStr>, port: u16) -> ServerProcess {
        ServerProcess::start_with(database, port, &[]).await
    }

    /// Like [`ServerProcess::start`], with more `pp server` arguments.
    pub async fn start_with(
        database: impl AsRef<std::ffi::OsStr>,
        port: u16,
        extra: &[&str],
    ) -> ServerProcess {
        ServerProcess::start_with_env(database, port, extra, &[]).await
    }

    /// Like [`ServerProcess::start_with`], with more environment variables.
    pub async fn start_with_env(
        database: impl AsRef<std::ffi::OsStr>,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut child = Command::new(pp_binary())
            .args(["server", "--db"])
            .arg(database.as_ref())
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("PAUSEPOINT_DATABASE_URL")
            .env("PAUSEPOINT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (address_tx, address_rx) = oneshot::channel::<String>();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let gathered = output.clone();
        tokio::spawn(async move {
            let mut address_tx = Some(address_tx);
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(address) = line.strip_prefix("PausePoint is listening on ") {
                    if let Some(tx) = address_tx.take() {
                        let _ = tx.send(address.to_owned());
                    }
                }
                gathered.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let gathered = output.clone();
        let logged = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                gathered.lock().unwrap().push_str(&format!("{line}\n"));
                logged.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let base = match tokio::time::timeout(Duration::from_secs(60), address_rx).await {
            Ok(Ok(base)) => base,
            _ => panic!(
                "pp server did not start; it printed:\n{}",
                output.lock().unwrap()
            ),
        };
        wait_until_healthy(&base).await;
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        ServerProcess {
            child,
            base,
            port,
            output,
            log,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// The server's resident memory now, in bytes (from /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib * 1024
    }

    /// `kill -9`: no chance to finish anything.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then waits for a clean exit; returns the exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("pp server did not stop within 30 s of SIGTERM")
            .unwrap();
        status.code()
    }

    pub fn printed(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The server's log (stderr) so far.
    pub fn logged(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// Creates a key with `pp admin keys create` and returns it (what it printed on stdout).
pub async fn admin_create_key(database: impl AsRef<Path>, name: &str, project: &str) -> String {
    let database = database.as_ref();
    let (code, stdout, stderr) = run_pp(&[
        "admin",
        "keys",
        "create",
        "--name",
        name,
        "--project",
        project,
        "--db",
        &database.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "pp admin keys create failed: {stderr}");
    stdout.trim().to_owned()
}
