//! `pp` as a shell sees it: help, version and usage errors. (Its presence also makes
//! `cargo test` build the `pp` binary that the end-to-end tests run.)

use std::process::Command;

fn pp(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pp"))
        .args(args)
        .output()
        .expect("run pp");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_names_every_command() {
    let (code, stdout, _) = pp(&["--help"]);
    assert_eq!(code, 0);
    for command in ["server", "admin"] {
        assert!(stdout.contains(command), "{stdout}");
    }
    let (code, stdout, _) = pp(&["server", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--db",
        "--bind",
        "--public-url",
        "--allow-private-network",
        "PAUSEPOINT_DATABASE_URL",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from:\n{stdout}");
    }
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let (code, _, stderr) = pp(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("frobnicate"), "{stderr}");
    let (code, _, stderr) = pp(&["server", "--bind", "not-an-address"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--bind"), "{stderr}");
}

#[test]
fn a_database_that_cannot_be_opened_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pp"))
        .args(["admin", "keys", "list", "--db", "mysql://nowhere/db"])
        .current_dir(dir.path())
        .output()
        .expect("run pp");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.starts_with("error: cannot open the database"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // Nothing is left behind for a database that was never opened (no key file).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
