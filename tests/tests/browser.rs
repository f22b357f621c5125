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
use pausepoint_tests::receivers::{Answer, WebhookReceiver};
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// chromedriver on a free loopback port, stopped when dropped with every Chromium it
/// started, also when a test panics with its browser session open.
struct Driver {
    process: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads a process group of its own, and the Chromium processes it
        // starts stay in it: killing the group leaves none of them running. (Killing
        // chromedriver alone would leave an open session's browser behind.)
        if let Some(pid) = self.process.id() {
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
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
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if let Ok(status) = reqwest::get(format!("{url}/status")).await {
            if status.status().is_success() {
                return Some(Driver {
                    process,
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
    let emulation = json!({
        "deviceMetrics": { "width": width, "height": 780, "pixelRatio": 2.0, "touch": true },
        "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
    });
    chromium(driver, Some(emulation), width).await
}

/// A headless desktop Chromium window `width` pixels wide.
async fn desktop(driver: &Driver, width: u32) -> Client {
    chromium(driver, None, width).await
}

/// A headless Chromium that reaches nothing but the server under test.
async fn chromium(driver: &Driver, mobile_emulation: Option<Value>, width: u32) -> Client {
    let mut options = json!({
        "binary": CHROMIUM,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic",
            // Nothing but the server under test: every other name fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            format!("--window-size={width},900"),
            format!("--user-data-dir={}", driver._profile.path().display()),
        ]
    });
    if let Some(emulation) = mobile_emulation {
        options["mobileEmulation"] = emulation;
    }
    let capabilities = json!({ "browserName": "chrome", "goog:chromeOptions": options });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// A Chrome DevTools Protocol command, sent through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

async fn cdp(browser: &Client, cmd: &'static str, params: Value) {
    browser.issue_cmd(Cdp { cmd, params }).await.unwrap();
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
    assert!(text.contains("3 hours 59 minutes left"), "{text}");
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

/// Every text and control of the page whose contrast falls short of WCAG AA, computed
/// from the rendered page: text 4.5:1 (3:1 when large), control borders 3:1.
const CONTRAST: &str = r#"
const parse = c => { const p = c.match(/rgba?\(([^)]+)\)/)[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
const lum = ({ r, g, b }) => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
const bg = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c.a > 0) return c; }
  return { r: 255, g: 255, b: 255, a: 1 }; };
const checked = [];
for (const el of document.querySelectorAll('body *')) {
  // SVG titles and descriptions are read, not drawn.
  if (['SCRIPT', 'STYLE', 'FORM', 'MAIN', 'title', 'desc'].includes(el.tagName)) continue;
  const s = getComputedStyle(el);
  const cls = el.getAttribute('class');
  const name = el.tagName.toLowerCase() + (cls ? '.' + cls.replace(/ /g, '.') : '');
  if ([...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) {
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight) >= 700;
    checked.push({ what: name + ' text', ratio: ratio(parse(s.color), bg(el)), need: size >= 24 || (bold && size >= 18.66) ? 3 : 4.5 });
  }
  if (el.tagName === 'BUTTON' || el.tagName === 'TEXTAREA') {
    checked.push({ what: name + ' border', ratio: ratio(parse(s.borderTopColor), bg(el.parentElement)), need: 3 });
  }
}
return checked;
"#;

/// The pairs checked on the page now, and those that fall short.
async fn contrast(browser: &Client) -> (usize, Vec<String>) {
    let checked = browser.execute(CONTRAST, vec![]).await.unwrap();
    let checked = checked.as_array().unwrap();
    let short = checked
        .iter()
        .filter(|c| c["ratio"].as_f64().unwrap() < c["need"].as_f64().unwrap())
        .map(|c| {
            format!(
                "{} {:.2}:1 (needs {})",
                c["what"].as_str().unwrap_or_default(),
                c["ratio"].as_f64().unwrap_or_default(),
                c["need"]
            )
        })
        .collect();
    (checked.len(), short)
}

#[tokio::test]
async fn every_text_and_control_meets_aa_contrast_in_both_colour_schemes() {
    let Some(driver) = driver().await else { return };
    let server = TestServer::start().await;
    let (key, _) = server.key_for_project("Acme Finance").await;
    let client = server.client.with_key(&key);
    let mut body = sms_pause(Some(4 * 3600));
    body["allow_text_response"] = json!(true);
    let pending = client.create(body).await.pause(StatusCode::CREATED);
    let answered = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let browser = phone(&driver, 375).await;
    browser.goto(&server.link(&answered)).await.unwrap();
    let approve = browser
        .find(Locator::XPath("//button[normalize-space()='Approve']"))
        .await
        .unwrap();
    approve.click().await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css(".state.done"))
        .await
        .unwrap();

    for scheme in ["light", "dark"] {
        cdp(
            &browser,
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await;
        let mut pages = 0;
        let mut short = Vec::new();
        // The question with an option picked (the filled button) and the note field.
        browser
            .goto(&format!("{}?choice=Reject", server.link(&pending)))
            .await
            .unwrap();
        let dark = browser
            .execute(
                "return matchMedia('(prefers-color-scheme: dark)').matches;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            dark,
            json!(scheme == "dark"),
            "the browser shows the {scheme} scheme"
        );
        save_screenshot(&browser, &format!("contrast-{scheme}-question.png")).await;
        let (n, bad) = contrast(&browser).await;
        pages += n;
        short.extend(bad);
        // The error a refused answer shows.
        browser
            .execute(
                "const b = document.querySelector('button[name=choice]'); b.value = 'Maybe'; b.click();",
                vec![],
            )
            .await
            .unwrap();
        browser
            .wait()
            .for_element(Locator::Css(".error"))
            .await
            .unwrap();
        save_screenshot(&browser, &format!("contrast-{scheme}-error.png")).await;
        let (n, bad) = contrast(&browser).await;
        pages += n;
        short.extend(bad);
        // An answered pause.
        browser.goto(&server.link(&answered)).await.unwrap();
        let (n, bad) = contrast(&browser).await;
        pages += n;
        short.extend(bad);
        assert!(pages >= 15, "{scheme}: only {pages} pairs were checked");
        assert!(short.is_empty(), "{scheme}: below WCAG AA: {short:?}");
    }
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_deadline_is_in_the_approvers_own_time_zone_and_in_utc_without_scripts() {
    let Some(driver) = driver().await else { return };
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(Some(4 * 3600)))
        .await
        .pause(StatusCode::CREATED);
    let link = server.link(&pause);
    let browser = phone(&driver, 375).await;
    cdp(
        &browser,
        "Emulation.setTimezoneOverride",
        json!({ "timezoneId": "America/Los_Angeles" }),
    )
    .await;
    browser.goto(&link).await.unwrap();
    let shown = browser
        .find(Locator::Css("time"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Late November: Pacific Standard Time, eight hours behind UTC.
    let local = pause
        .expires_at
        .to_zoned(jiff::tz::TimeZone::get("America/Los_Angeles").unwrap());
    let minute = local.strftime(":%M").to_string();
    assert!(
        shown.contains("PST") && shown.contains(&minute) && !shown.contains("UTC"),
        "{shown}"
    );
    save_screenshot(&browser, "deadline-local.png").await;

    cdp(
        &browser,
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": true }),
    )
    .await;
    browser.goto(&link).await.unwrap();
    let shown = browser
        .find(Locator::Css("time"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        shown,
        pause.expires_at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        "without scripts the deadline stays in UTC"
    );
    browser.close().await.unwrap();
}

#[tokio::test]
async fn two_approvers_see_the_votes_so_far_and_who_decided() {
    let Some(driver) = driver().await else { return };
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(json!({
            "recipients": [{"recipient": "dana@example.com"}, {"recipient": "lee@example.com"}],
            "message": "Wire $84,000 to Meridian Freight?",
            "options": ["Approve", "Reject"],
            "quorum": {"option": "Approve", "count": 2},
            "timeout_seconds": 4 * 3600
        }))
        .await
        .pause(StatusCode::CREATED);
    let browser = phone(&driver, 375).await;

    // Dana approves on her phone: recorded, one of two.
    browser
        .goto(&server.approver_link(&pause, 0))
        .await
        .unwrap();
    let text = body_text(&browser).await;
    assert!(text.contains("0 of 2 approvals"), "{text}");
    assert!(text.contains("Also asked: lee@example.com"), "{text}");
    browser
        .find(Locator::XPath("//button[normalize-space()='Approve']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css(".state.done"))
        .await
        .unwrap();
    let text = body_text(&browser).await;
    assert!(
        text.contains("Your answer was recorded: Approve") && text.contains("1 of 2 approvals"),
        "{text}"
    );
    save_screenshot(&browser, "approvers-one-of-two.png").await;

    // Lee's page shows Dana's vote; readable in both colour schemes.
    browser
        .goto(&server.approver_link(&pause, 1))
        .await
        .unwrap();
    let text = body_text(&browser).await;
    assert!(text.contains("dana@example.com chose Approve"), "{text}");
    for scheme in ["light", "dark"] {
        cdp(
            &browser,
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await;
        let (checked, short) = contrast(&browser).await;
        assert!(checked > 5, "{scheme}: {checked} elements checked");
        assert!(short.is_empty(), "{scheme}: {short:?}");
    }
    let width = browser
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .unwrap();
    assert!(width.as_u64().unwrap() <= 375, "no sideways scrolling");
    save_screenshot(&browser, "approvers-second-sees-the-first.png").await;
    browser
        .find(Locator::XPath("//button[normalize-space()='Approve']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css(".state.done"))
        .await
        .unwrap();

    // Dana's link now shows the outcome and who decided it.
    browser
        .goto(&server.approver_link(&pause, 0))
        .await
        .unwrap();
    let text = body_text(&browser).await;
    assert!(
        text.contains("This question was already answered: Approve by lee@example.com"),
        "{text}"
    );
    save_screenshot(&browser, "approvers-decided.png").await;
    browser.close().await.unwrap();
}

/// axe-core's script, installed by `.ci/run` (npm, into the tools folder); None, with a
/// note, outside CI when it is missing.
fn axe_source() -> Option<String> {
    let path = std::env::var("PAUSEPOINT_TEST_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/pausepoint/tools/js/node_modules/axe-core/axe.min.js")
        });
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) => {
            let message = format!(
                "{} is missing: npm install --prefix ~/.cache/pausepoint/tools/js axe-core@4.10.3",
                path.display()
            );
            if std::env::var_os("CI").is_some() {
                panic!("{message}");
            }
            pausepoint_tests::skipped(&message);
            None
        }
    }
}

/// The page's serious and critical accessibility violations, as axe-core finds them
/// (WCAG 2 A and AA rules and best practices).
async fn accessibility(browser: &Client, axe: &str) -> Vec<String> {
    browser
        .execute(&format!("{axe}\nreturn true;"), vec![])
        .await
        .unwrap();
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice'] })
               .then(r => done({ passes: r.passes.length, violations: r.violations.map(v => ({ id: v.id,
                   impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3) })) }))
               .catch(e => done({ passes: 0, violations: [{ id: 'axe failed: ' + e, impact: 'critical', nodes: [] }] }));",
            vec![],
        )
        .await
        .unwrap();
    let violations = &found["violations"];
    eprintln!("axe: {} rules pass; found {}", found["passes"], violations);
    assert!(found["passes"].as_u64().unwrap() > 10, "axe ran its rules");
    violations
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| format!("{} ({}) at {}", v["id"], v["impact"], v["nodes"]))
        .collect()
}

/// Signs in to the console through its form.
async fn console_sign_in(browser: &Client, base: &str, key: &str) {
    browser.goto(&format!("{base}/console")).await.unwrap();
    let field = browser.find(Locator::Css("input#key")).await.unwrap();
    field.send_keys(key).await.unwrap();
    browser
        .find(Locator::XPath("//button[normalize-space()='Sign in']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//h1[normalize-space()='Pauses']"))
        .await
        .unwrap();
}

/// Waits (up to 10 s) for `xpath`, reloading the page between looks when `reload`.
async fn until_shown(browser: &Client, xpath: &str, reload: bool) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(found) = browser.find(Locator::XPath(xpath)).await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{xpath} was not shown within 10 s"
        );
        if reload {
            browser.refresh().await.unwrap();
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn click(browser: &Client, xpath: &str) {
    browser
        .find(Locator::XPath(xpath))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Serious or critical axe findings and AA contrast shortfalls of the page, in both
/// colour schemes; a screenshot of each.
async fn check_page(browser: &Client, axe: &str, name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for scheme in ["light", "dark"] {
        cdp(
            browser,
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await;
        save_screenshot(browser, &format!("console-{name}-{scheme}.png")).await;
        problems.extend(
            accessibility(browser, axe)
                .await
                .into_iter()
                .map(|p| format!("{name} {scheme}: {p}")),
        );
        let (_, short) = contrast(browser).await;
        problems.extend(short.into_iter().map(|p| format!("{name} {scheme}: {p}")));
    }
    problems
}

#[tokio::test]
async fn an_operator_watches_cancels_resends_and_manages_keys_in_the_console() {
    let Some(driver) = driver().await else { return };
    let Some(axe) = axe_source() else { return };
    let mut receiver = WebhookReceiver::start(vec![Answer::Status(410)]).await;
    let server = TestServer::start_with(|c| c.allow_private_network = true).await;
    let base = server.client.base.clone();
    // Some history for the charts: answered, timed-out-free, cancelled.
    for choice in ["Approve", "Reject", "Approve"] {
        let pause = server
            .client
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
        server.respond(pause.pause_id, choice).await;
    }
    let browser = desktop(&driver, 1280).await;
    console_sign_in(&browser, &base, &server.client.key).await;
    let mut problems = check_page(&browser, &axe, "pauses-1280").await;

    // A pause created through the API appears without a reload.
    let mut body = sms_pause(None);
    body["message"] = json!("Ship release 4.2 to production? <script>alert(1)</script>");
    body["webhook_url"] = json!(receiver.url);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let row = "//tbody[@id='pause-rows']//a[contains(., 'Ship release 4.2')]";
    let link = until_shown(&browser, row, false).await;
    assert!(
        link.text()
            .await
            .unwrap()
            .contains("<script>alert(1)</script>"),
        "shown as text"
    );
    let alerts = browser.get_alert_text().await;
    assert!(alerts.is_err(), "no script ran");

    // Its timeline; cancel it from there.
    link.click().await.unwrap();
    until_shown(&browser, "//h2[normalize-space()='Timeline']", false).await;
    assert!(body_text(&browser).await.contains("pause.created"));
    click(&browser, "//button[normalize-space()='Cancel this pause']").await;
    until_shown(
        &browser,
        "//*[contains(., 'The pause is cancelled.')]",
        false,
    )
    .await;
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Cancelled
    );
    // The receiver answers 410: the event fails at once and can be resent.
    let first = receiver.next(30).await;
    until_shown(&browser, "//button[normalize-space()='Resend']", true).await;
    problems.extend(check_page(&browser, &axe, "timeline-1280").await);
    click(&browser, "//button[normalize-space()='Resend']").await;
    until_shown(
        &browser,
        "//*[contains(., 'queued to be sent again')]",
        false,
    )
    .await;
    let again = receiver.next(30).await;
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));

    // A key: made, shown once, revoked.
    browser.goto(&format!("{base}/console/keys")).await.unwrap();
    browser
        .find(Locator::Css("input#name"))
        .await
        .unwrap()
        .send_keys("release-bot")
        .await
        .unwrap();
    click(&browser, "//button[normalize-space()='Create key']").await;
    let made = until_shown(&browser, "//*[@id='new-key']", false).await;
    let key = made.text().await.unwrap();
    assert!(key.starts_with("pp_live_"), "{key}");
    assert!(server
        .client
        .with_key(&key)
        .get_path("/v1/pause")
        .await
        .status
        .is_success());
    problems.extend(check_page(&browser, &axe, "keys-1280").await);
    click(&browser, "//button[@aria-label='Revoke release-bot']").await;
    until_shown(&browser, "//*[contains(., 'The key is revoked')]", false).await;
    assert_eq!(
        server
            .client
            .with_key(&key)
            .get_path("/v1/pause")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // The charts and the audit log.
    browser
        .goto(&format!("{base}/console/charts"))
        .await
        .unwrap();
    let charts = browser
        .find_all(Locator::Css("figure.chart svg"))
        .await
        .unwrap();
    assert_eq!(charts.len(), 5);
    let bars = browser
        .find_all(Locator::Css("svg rect.bar"))
        .await
        .unwrap();
    assert!(bars.len() >= 3, "bars are drawn: {}", bars.len());
    let text = body_text(&browser).await;
    for label in [
        "Time to decision",
        "Outcomes per day",
        "Delivery failures by channel",
        "Webhook failures per day",
        "day (UTC)",
    ] {
        assert!(text.contains(label), "{label}");
    }
    problems.extend(check_page(&browser, &axe, "charts-1280").await);
    browser
        .goto(&format!("{base}/console/audit"))
        .await
        .unwrap();
    assert!(body_text(&browser).await.contains("Verifies"));
    problems.extend(check_page(&browser, &axe, "audit-1280").await);

    // Signing out ends it.
    click(&browser, "//button[normalize-space()='Sign out']").await;
    until_shown(&browser, "//h1[contains(., 'Sign in')]", false).await;
    browser
        .goto(&format!("{base}/console/pauses"))
        .await
        .unwrap();
    until_shown(&browser, "//h1[contains(., 'Sign in')]", false).await;
    problems.extend(check_page(&browser, &axe, "sign-in-1280").await);
    browser.close().await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn the_console_fits_a_phone_at_375_pixels() {
    let Some(driver) = driver().await else { return };
    let Some(axe) = axe_source() else { return };
    let server = TestServer::start().await;
    let mut body = sms_pause(None);
    body["message"] =
        json!("Delete 1,204 stale records from the customers table in the EU region?");
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let browser = phone(&driver, 375).await;
    console_sign_in(&browser, &server.client.base, &server.client.key).await;
    let mut problems = Vec::new();
    for (name, path) in [
        ("pauses-375", "/console/pauses".to_owned()),
        (
            "timeline-375",
            format!("/console/pauses/{}", pause.pause_id),
        ),
        ("charts-375", "/console/charts".to_owned()),
        ("keys-375", "/console/keys".to_owned()),
    ] {
        browser
            .goto(&format!("{}{path}", server.client.base))
            .await
            .unwrap();
        let width = browser
            .execute("return document.documentElement.scrollWidth;", vec![])
            .await
            .unwrap();
        assert!(
            width.as_u64().unwrap() <= 375,
            "{name} fits 375 px: {width}"
        );
        problems.extend(check_page(&browser, &axe, name).await);
    }
    // Keyboard: the first Tab reaches the skip link, and focus is visible.
    browser
        .goto(&format!("{}/console/pauses", server.client.base))
        .await
        .unwrap();
    let focused = browser
        .execute("document.body.focus(); return null;", vec![])
        .await;
    assert!(focused.is_ok());
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let outline = browser
        .execute(
            "const e = document.activeElement; return [e.className, getComputedStyle(e).outlineStyle];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        outline,
        json!(["skip", "solid"]),
        "the skip link takes focus, visibly"
    );
    browser.close().await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}
