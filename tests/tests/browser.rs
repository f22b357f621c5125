//! The response page in a real headless Chromium at phone size: open the link, tap an
//! option, see the confirmation, reload and see "already answered". Screenshots land in
//! `target/screenshots/` for a person to look at.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Outside CI a
//! machine without them skips this test with a note; in CI (`CI=true`) that is a failure.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use pausepoint_api::PauseStatus;
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    _process: Child,
    url: String,
    _profile: tempfile::TempDir,
}

async fn driver() -> Option<Driver> {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
    if !std::path::Path::new(&driver).exists() || !std::path::Path::new(CHROMIUM).exists() {
        let message =
            format!("{driver} or {CHROMIUM} is missing: apt-get install chromium chromium-driver");
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        pausepoint_tests::skipped(&message);
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let process = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if let Ok(status) = reqwest::get(format!("{url}/status")).await {
            if status.status().is_success() {
                return Some(Driver {
                    _process: process,
                    url,
                    _profile: tempfile::tempdir().unwrap(),
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not start");
}

/// A headless Chromium emulating a phone `width` CSS pixels wide.
async fn phone(driver: &Driver, width: u32) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic",
                // Nothing but the server under test: every other name fails to resolve.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
            "mobileEmulation": {
                "deviceMetrics": { "width": width, "height": 780, "pixelRatio": 2.0, "touch": true },
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
            }
        }
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap()
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn save_screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.canonicalize().unwrap().display());
}

async fn body_text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_human_taps_an_answer_on_a_phone() {
    let Some(driver) = driver().await else { return };
    let server = TestServer::start().await;
    let mut body = sms_pause(Some(4 * 3600));
    body["allow_text_response"] = json!(true);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let link = server.link(&pause);

    // The agent waits on a long-poll the whole time.
    let agent = server.client.clone();
    let waiting = tokio::spawn(async move {
        let reply = agent.wait(pause.pause_id, 60).await;
        (reply, Instant::now())
    });

    let browser = phone(&driver, 390).await;
    browser.goto(&link).await.unwrap();
    let text = body_text(&browser).await;
    assert!(text.contains("Wire $8,400 to Meridian?"), "{text}");
    assert!(text.contains("Decision requested by default"));
    let buttons = browser
        .find_all(Locator::Css("button[name=choice]"))
        .await
        .unwrap();
    let mut labels = Vec::new();
    for button in &buttons {
        labels.push(button.text().await.unwrap());
    }
    assert_eq!(labels, ["Approve", "Reject"]);

    // One request shows the page: no styles, scripts, fonts, images or favicon to fetch.
    let measured = browser
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0];
             return { resources: performance.getEntriesByType('resource').length,
                      bytes: nav.encodedBodySize, transfer: nav.transferSize,
                      width: document.documentElement.scrollWidth };",
            vec![],
        )
        .await
        .unwrap();
    eprintln!("page measurements: {measured}");
    assert_eq!(measured["resources"], 0, "the page loads nothing else");
    assert!(
        measured["width"].as_u64().unwrap() <= 390,
        "no sideways scrolling"
    );
    save_screenshot(&browser, "response-page.png").await;

    let note = browser
        .find(Locator::Css("textarea[name=note]"))
        .await
        .unwrap();
    note.send_keys("Checked the invoice").await.unwrap();
    let approve = browser
        .find(Locator::XPath("//button[normalize-space()='Approve']"))
        .await
        .unwrap();
    let tapped = Instant::now();
    approve.click().await.unwrap();

    // The click submits the form; wait for the page it brings.
    browser
        .wait()
        .for_element(Locator::Css(".state.done"))
        .await
        .unwrap();
    let text = body_text(&browser).await;
    assert!(text.contains("Your answer was recorded: Approve"), "{text}");
    save_screenshot(&browser, "response-recorded.png").await;

    let (reply, seen) = waiting.await.unwrap();
    let decided = reply.pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    assert_eq!(decided.response_choice.as_deref(), Some("Approve"));
    assert_eq!(
        decided.response_text.as_deref(),
        Some("Checked the invoice")
    );
    eprintln!(
        "tap to agent: {} ms",
        seen.saturating_duration_since(tapped).as_millis()
    );

    // Reloading resubmits the form: the page now says it was already answered.
    browser.refresh().await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css(".state:not(.done)"))
        .await
        .unwrap();
    let text = body_text(&browser).await;

    assert!(
        text.contains("already answered") && text.contains("Approve"),
        "{text}"
    );
    assert!(
        browser.find(Locator::Css("form")).await.is_err(),
        "no form once decided"
    );
    // Opening the link again says the same.
    browser.goto(&link).await.unwrap();
    let text = body_text(&browser).await;
    assert!(
        text.contains("This question was already answered: Approve"),
        "{text}"
    );
    save_screenshot(&browser, "response-already-answered.png").await;
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_page_reads_at_320_pixels_with_long_options() {
    let Some(driver) = driver().await else { return };
    let server = TestServer::start().await;
    let mut body = sms_pause(None);
    body["message"] = json!("The outreach agent drafted a campaign to 340 contacts in the EMEA region, subject line \"Q4 pricing update\". Send it now?");
    body["options"] = json!([
        "Send to all 340 contacts now",
        "Send to a 10% sample first",
        "Hold until Monday",
        "Cancel the campaign"
    ]);
    body["timeout_default"] = json!("Hold until Monday");
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let browser = phone(&driver, 320).await;
    browser
        .goto(&format!("{}?choice=Hold+until+Monday", server.link(&pause)))
        .await
        .unwrap();
    let width = browser
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap() <= 320,
        "the page fits 320 px: {width}"
    );
    let text = body_text(&browser).await;
    assert!(text.contains("You picked “Hold until Monday”"), "{text}");
    save_screenshot(&browser, "response-page-320.png").await;
    browser.close().await.unwrap();
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
}
