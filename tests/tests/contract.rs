//! The API against its own description: the served document validates as OpenAPI 3.1
//! (openapi-spec-validator), and Schemathesis, a property-based tester, runs every
//! operation of a real `pp server` (SQLite, with a key) against it: no 5xx, every answer
//! conforms to the document, only documented status codes. Both tools are installed by
//! `.ci/run` into the virtual environment named by `PAUSEPOINT_TEST_CONTRACT_TOOLS`.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pausepoint_tests::{admin_create_key, ServerProcess};

/// The virtual environment with `st` and `openapi-spec-validator`, or None (after saying
/// so) when it is not installed here.
fn tools() -> Option<PathBuf> {
    let dir = std::env::var_os("PAUSEPOINT_TEST_CONTRACT_TOOLS").map(PathBuf::from);
    match dir {
        Some(dir)
            if dir.join("bin/st").is_file() && dir.join("bin/openapi-spec-validator").is_file() =>
        {
            Some(dir)
        }
        _ if std::env::var_os("CI").is_some() => panic!(
            "PAUSEPOINT_TEST_CONTRACT_TOOLS must name a virtual environment with schemathesis and openapi-spec-validator: .ci/run installs them"
        ),
        _ => {
            pausepoint_tests::skipped(
                "Schemathesis is not installed: set PAUSEPOINT_TEST_CONTRACT_TOOLS (see .ci/run)",
            );
            None
        }
    }
}

/// Runs a tool in `dir` to its end, within `limit`, and returns whether it succeeded and
/// what it printed. (Schemathesis and Hypothesis write their state where they run: not in
/// the repository.)
async fn run(program: PathBuf, dir: &Path, args: &[&str], limit: Duration) -> (bool, String) {
    let output = tokio::time::timeout(
        limit,
        tokio::process::Command::new(&program)
            .args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{} ran longer than {limit:?}", program.display()))
    .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

#[tokio::test]
async fn the_api_keeps_the_contract_its_document_states() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pausepoint.db");
    let key = admin_create_key(&database, "contract", "default").await;
    let server = ServerProcess::start(&database, 0).await;

    // The document validates as OpenAPI 3.1.
    let document = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document).unwrap();
    let (valid, said) = run(
        tools.join("bin/openapi-spec-validator"),
        dir.path(),
        &[file.to_str().unwrap()],
        Duration::from_secs(120),
    )
    .await;
    assert!(valid, "the document is not valid OpenAPI 3.1:\n{said}");

    // Schemathesis, bounded and reproducible: a fixed seed, a cap on cases per operation.
    // `positive_data_acceptance` is left out: the API's rules reach past what a schema
    // says (an E.164 number, a default among the options, a visible character), so a
    // schema-valid body may rightly get a 422. A hook event waits for a person, up to its
    // timeout: the hook suites test it, and here it is not fuzzed.
    let document_url = format!("{}/openapi.json", server.base);
    let authorization = format!("Authorization: Bearer {key}");
    let (passed, said) = run(
        tools.join("bin/st"),
        dir.path(),
        &[
            "run",
            &document_url,
            "--header",
            &authorization,
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--exclude-operation-id",
            "claude_code_hook",
            "--max-examples",
            "25",
            "--seed",
            "20261129",
            "--workers",
            "1",
            "--request-timeout",
            "75",
            // A long-poll (`?wait=`) holds up to 60 s by design.
            "--max-response-time",
            "65",
            "--no-color",
            // Nothing written into the repository (its example database, its reports).
            "--generation-database",
            "none",
            "--output-sanitize",
            "true",
        ],
        Duration::from_secs(900),
    )
    .await;
    // What it ran, where a person running the suite sees it.
    let _ = writeln!(std::io::stderr(), "\nSchemathesis:\n{said}");
    assert!(
        passed,
        "Schemathesis found the API breaking its document:\n{said}"
    );
    assert!(
        !server.logged().contains("panicked"),
        "the server panicked:\n{}",
        server.logged()
    );
}
