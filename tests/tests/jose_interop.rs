//! The README's receipt verifiers, run as written with the libraries they name: PyJWT in
//! Python and jose in Node.js verify a real receipt with the server's public key, and refuse
//! it for another message. The libraries are installed by `.ci/run` into the folder named by
//! `PAUSEPOINT_TEST_JOSE_TOOLS` (`py/` for Python, `js/node_modules/` for Node.js).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;

/// The fenced block of the README whose first line is `first_line`.
fn readme_block(first_line: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme
        .find(&format!("\n{first_line}\n"))
        .unwrap_or_else(|| panic!("the README has no block starting {first_line:?}"));
    let body = &readme[start + 1..];
    body[..body.find("\n```").unwrap() + 1].to_owned()
}

/// Where the JOSE libraries are, or None (after saying so) when they are not installed here.
fn tools() -> Option<PathBuf> {
    let dir = std::env::var_os("PAUSEPOINT_TEST_JOSE_TOOLS").map(PathBuf::from);
    match dir {
        Some(dir) if dir.join("py/jwt").is_dir() && dir.join("js/node_modules/jose").is_dir() => {
            Some(dir)
        }
        _ if std::env::var_os("CI").is_some() => {
            panic!("PAUSEPOINT_TEST_JOSE_TOOLS must name a folder with PyJWT (py/) and jose (js/node_modules/): .ci/run installs them")
        }
        _ => {
            pausepoint_tests::skipped(
                "PyJWT and jose are not installed: set PAUSEPOINT_TEST_JOSE_TOOLS (see .ci/run)",
            );
            None
        }
    }
}

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn run(program: &str, script: &Path, env: &[(&str, &Path)], args: &[&str]) -> Ran {
    let mut command = tokio::process::Command::new(program);
    command
        .arg(script)
        .args(args)
        .current_dir(script.parent().unwrap())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .unwrap()
        .unwrap();
    Ran {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn pyjwt_and_jose_verify_a_receipt_as_the_readme_shows() {
    let Some(tools) = tools() else { return };
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let decided = server.respond(pause.pause_id, "Approve").await;
    let receipt = decided.receipt.unwrap();
    let dir = server.dir().to_owned();
    let keys = server.client.get_path("/v1/audit/public-key").await;
    std::fs::write(dir.join("audit-key.json"), keys.body.to_string()).unwrap();
    let python = dir.join("verify_receipt.py");
    std::fs::write(
        &python,
        readme_block("# verify_receipt.py: python3 verify_receipt.py RECEIPT \"MESSAGE\""),
    )
    .unwrap();
    let node = dir.join("verify_receipt.mjs");
    std::fs::write(
        &node,
        readme_block("// verify_receipt.mjs: node verify_receipt.mjs RECEIPT \"MESSAGE\""),
    )
    .unwrap();
    // ES modules find packages in node_modules beside the script.
    std::os::unix::fs::symlink(tools.join("js/node_modules"), dir.join("node_modules")).unwrap();

    let expected = "responded Approve by recipient:+13128471928";
    let py_path = tools.join("py");
    for (program, script, env) in [
        ("python3", &python, vec![("PYTHONPATH", py_path.as_path())]),
        ("node", &node, vec![]),
    ] {
        let holds = run(
            program,
            script,
            &env,
            &[&receipt, "Wire $8,400 to Meridian?"],
        )
        .await;
        assert!(holds.ok, "{program}: {}", holds.stderr);
        assert_eq!(holds.stdout.trim(), expected, "{program}");
        let other = run(
            program,
            script,
            &env,
            &[&receipt, "Wire $84,000 to Meridian?"],
        )
        .await;
        assert!(!other.ok, "{program} accepted another message");
        assert!(
            other.stderr.contains("another message"),
            "{program}: {}",
            other.stderr
        );
        // A receipt with its claims changed under the signature is refused by the library.
        let parts: Vec<&str> = receipt.split('.').collect();
        let mut payload = parts[1].to_owned().into_bytes();
        payload[40] = if payload[40] == b'x' { b'y' } else { b'x' };
        let payload = String::from_utf8(payload).unwrap();
        let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
        let refused = run(
            program,
            script,
            &env,
            &[&forged, "Wire $8,400 to Meridian?"],
        )
        .await;
        assert!(!refused.ok, "{program} accepted a forged receipt");
    }
}
