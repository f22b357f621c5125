//! The console's pages. maud escapes every string it interpolates; the stylesheet and the
//! script are files of the server's own (`/console/console.css`, `/console/console.js`).

use jiff::Timestamp;
use maud::{html, Markup, DOCTYPE};
use pausepoint_api::proof::Checkpoint;
use pausepoint_api::webhooks::{WebhookDelivery, WebhookStatus};
use pausepoint_api::{AuditEvent, AuditEventKind, Pause, PauseStatus, VerifyReport};
use serde_json::Value;

use super::session::BASE;
use crate::store::keys::KeyRecord;

/// The sections of the console, in the order of the menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Pauses,
    Audit,
    Keys,
    Charts,
}

const SECTIONS: [(Section, &str, &str); 4] = [
    (Section::Pauses, "Pauses", "/pauses"),
    (Section::Audit, "Audit log", "/audit"),
    (Section::Keys, "API keys", "/keys"),
    (Section::Charts, "Charts", "/charts"),
];

/// Who is signed in, for the page's header and its forms.
pub struct Chrome<'a> {
    pub project: &'a str,
    pub key_name: &'a str,
    pub csrf: &'a str,
    pub section: Section,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="robots" content="noindex, nofollow";
            link rel="icon" href="data:,";
            link rel="stylesheet" href={(BASE) "/console.css"};
            title { (title) " · PausePoint console" }
        }
    }
}

/// A page of the signed-in console.
pub fn page(title: &str, chrome: &Chrome<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "PausePoint" }
                    nav aria-label="Console" {
                        ul {
                            @for (section, name, path) in SECTIONS {
                                li {
                                    @if section == chrome.section {
                                        a href={(BASE) (path)} aria-current="page" { (name) }
                                    } @else {
                                        a href={(BASE) (path)} { (name) }
                                    }
                                }
                            }
                        }
                    }
                    span.project { "Project " strong { (chrome.project) } " · key " (chrome.key_name) }
                    form.inline method="post" action={(BASE) "/sign-out"} {
                        (csrf_field(chrome.csrf))
                        button.secondary type="submit" { "Sign out" }
                    }
                }
                main id="main" tabindex="-1" { (body) }
                script src={(BASE) "/console.js"} {}
            }
        }
    }
}

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A time, in UTC until the script shows it in the reader's zone.
pub fn time(at: Timestamp) -> Markup {
    html! {
        time datetime=(at.to_string()) { (at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()) }
    }
}

fn status(status: &str) -> Markup {
    html! { span class={"status status-" (status)} { (status.replace('_', " ")) } }
}

/// The sign-in page; `next` is the console page to open once signed in.
pub fn sign_in(nonce: &str, next: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main.signin id="main" {
                    h1 { "Sign in to the PausePoint console" }
                    p.muted {
                        "Use an API key of the project you want to see. The key is checked once and "
                        "never kept by your browser: you get a session that ends when you sign out, "
                        "after 12 hours, or when the key is revoked."
                    }
                    @if let Some(error) = error { p.notice.error role="alert" { (error) } }
                    form method="post" action={(BASE) "/sign-in"} {
                        input type="hidden" name="csrf" value=(nonce);
                        @if let Some(next) = next { input type="hidden" name="next" value=(next); }
                        div {
                            label for="key" { "API key" }
                            input id="key" name="key" type="password" autocomplete="off" required
                                placeholder="pp_live_…" spellcheck="false";
                        }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// An error page, signed in or not.
pub fn problem(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main.signin id="main" {
                    h1 { (title) }
                    p.notice.error role="alert" { (message) }
                    p { a href={(BASE) "/pauses"} { "Back to the console" } }
                }
            }
        }
    }
}

/// What the list of pauses is filtered by, as the form holds it.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
pub struct PauseFilters {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub channel: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recipient: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub q: String,
    /// A UTC day, `YYYY-MM-DD`: created on it or later.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub since: String,
    /// A UTC day: created on it or earlier.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub until: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
}

/// A choice among `choices` (value, and what the option says), or any.
fn select(name: &str, label: &str, current: &str, choices: &[(&str, String)]) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" selected[current.is_empty()] { "Any" }
                @for (value, shown) in choices {
                    option value=(value) selected[current == *value] { (shown) }
                }
            }
        }
    }
}

/// Choices shown as their names, with `_` read as a space.
fn named(values: &[&'static str]) -> Vec<(&'static str, String)> {
    values.iter().map(|v| (*v, v.replace('_', " "))).collect()
}

/// The list of pauses, with its filters; the rows update live.
pub fn pauses(
    chrome: &Chrome<'_>,
    filters: &PauseFilters,
    list: &[Pause],
    next: Option<String>,
    error: Option<&str>,
) -> Markup {
    let mut live = filters.clone();
    live.cursor.clear();
    let live_query = serde_urlencoded::to_string(&live).unwrap_or_default();
    let next_query = next.map(|cursor| {
        let mut page = filters.clone();
        page.cursor = cursor;
        serde_urlencoded::to_string(&page).unwrap_or_default()
    });
    page(
        "Pauses",
        chrome,
        html! {
            h1 { "Pauses" }
            @if let Some(error) = error { p.notice.error role="alert" { (error) } }
            form.filters method="get" action={(BASE) "/pauses"} role="search" aria-label="Filter pauses" {
                (select("status", "Status", &filters.status, &named(&["pending", "responded", "timed_out", "cancelled"])))
                (select("channel", "Channel", &filters.channel, &named(&["sms", "email", "slack", "ntfy"])))
                div { label for="recipient" { "Recipient" } input id="recipient" name="recipient" value=(filters.recipient) autocomplete="off"; }
                div { label for="q" { "Message contains" } input id="q" name="q" type="search" value=(filters.q); }
                div { label for="since" { "Created from (UTC)" } input id="since" name="since" type="date" value=(filters.since); }
                div { label for="until" { "Created to (UTC)" } input id="until" name="until" type="date" value=(filters.until); }
                div { button type="submit" { "Filter" } }
            }
            div.table {
                table {
                    caption.muted { "Newest first" @if filters.cursor.is_empty() { ". Updates live." } }
                    thead { tr {
                        th scope="col" { "Created" }
                        th scope="col" { "Status" }
                        th scope="col" { "Message" }
                        th.wide scope="col" { "Channel" }
                        th.wide scope="col" { "Recipient" }
                        th.wide scope="col" { "Decision" }
                    } }
                    @if filters.cursor.is_empty() {
                        tbody id="pause-rows" data-live={(BASE) "/pauses/live?" (live_query)} { (pause_rows(list)) }
                    } @else {
                        tbody id="pause-rows" { (pause_rows(list)) }
                    }
                }
            }
            @if let Some(query) = next_query {
                p.pager { a href={(BASE) "/pauses?" (query)} { "Older pauses" } }
            }
        },
    )
}

/// The rows of the list: what the live list sends again when pauses change.
pub fn pause_rows(list: &[Pause]) -> Markup {
    html! {
        @if list.is_empty() {
            tr { td colspan="6" { "No pauses match." } }
        }
        @for pause in list {
            tr {
                td { (time(pause.created_at)) }
                td { (status(pause.status.as_str())) }
                td.message { a href={(BASE) "/pauses/" (pause.pause_id)} { (pause.message) } }
                td.wide { (pause.channel) }
                td.wide { (pause.recipient) }
                td.wide {
                    @if let Some(choice) = &pause.response_choice { (choice) }
                }
            }
        }
    }
}

/// A value of at most about a line: signatures and long lists are in the export whole.
fn shortened(value: &str) -> String {
    const MOST: usize = 96;
    if value.chars().count() <= MOST {
        return value.to_owned();
    }
    let mut short: String = value.chars().take(MOST - 24).collect();
    short.push('…');
    short
}

/// What a pause's page shows above its timeline (the question, the approvers' table) is
/// left out of each event's line there; empty values everywhere.
const SHOWN_ABOVE: [&str; 4] = ["message", "options", "approvers", "allow_text_response"];

fn data_line(data: &Value, skip: &[&str]) -> String {
    match data {
        Value::Object(map) => map
            .iter()
            .filter(|(k, v)| !v.is_null() && !skip.contains(&k.as_str()))
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {}", shortened(s)),
                other => format!("{k}: {}", shortened(&other.to_string())),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        other => other.to_string(),
    }
}

/// A pause's timeline: what it asked, every event of its audit chain (deliveries with the
/// provider's answers, views, votes, escalations, reminders, the decision), the receipt,
/// and each webhook event with its attempts.
pub fn timeline(
    chrome: &Chrome<'_>,
    pause: &Pause,
    events: &[AuditEvent],
    webhooks: &[WebhookDelivery],
    notice: Option<(bool, &str)>,
) -> Markup {
    let id = pause.pause_id;
    page(
        "Pause",
        chrome,
        html! {
            p { a href={(BASE) "/pauses"} { "← All pauses" } }
            h1.question { (pause.message) }
            p.muted { "Pause " span.mono { (id) } }
            @if let Some((ok, text)) = notice {
                p class={"notice " (if ok { "ok" } else { "error" })} role="status" { (text) }
            }
            dl.facts {
                dt { "Status" } dd { (status(pause.status.as_str())) }
                dt { "Options" } dd { (pause.options.join(" · ")) }
                dt { "Channel" } dd { (pause.channel) }
                dt { "Recipient" } dd { (pause.recipient) }
                dt { "Created" } dd { (time(pause.created_at)) }
                dt { "Deadline" } dd { (time(pause.expires_at)) }
                @if let Some(default) = &pause.timeout_default { dt { "If nobody answers" } dd { (default) } }
                @if let Some(choice) = &pause.response_choice { dt { "Decision" } dd { (choice) } }
                @if let Some(text) = &pause.response_text { dt { "Note" } dd { (text) } }
                @if let Some(at) = pause.response_at { dt { "Decided" } dd { (time(at)) } }
                @if let Some(metadata) = &pause.metadata {
                    dt { "Metadata" } dd.mono { (serde_json::to_string(metadata).unwrap_or_default()) }
                }
                @if let Some(url) = &pause.webhook_url { dt { "Webhook" } dd.mono { (url) } }
            }
            @if pause.status == PauseStatus::Pending {
                form method="post" action={(BASE) "/pauses/" (id) "/cancel"} {
                    (csrf_field(chrome.csrf))
                    button.danger type="submit" { "Cancel this pause" }
                }
            }
            @if pause.approvers.len() > 1 {
                h2 { "Approvers" }
                div.table { table {
                    thead { tr { th scope="col" { "Approver" } th scope="col" { "Channel" } th scope="col" { "Tier" } th scope="col" { "Vote" } } }
                    tbody {
                        @for approver in &pause.approvers {
                            tr {
                                td { (approver.recipient) }
                                td { (approver.channel) }
                                td { (approver.tier) }
                                td { @if let Some(vote) = &approver.vote { (vote.choice) " · " (time(vote.at)) } @else { span.muted { "not yet" } } }
                            }
                        }
                    }
                } }
            }
            h2 { "Timeline" }
            ol.timeline {
                @for event in events {
                    li {
                        span.event { (event.event.as_str()) }
                        " · " (time(event.occurred_at)) " · " span.muted { (event.actor) }
                        @let line = data_line(&event.data, &SHOWN_ABOVE);
                        @if !line.is_empty() { p.data { (line) } }
                    }
                }
            }
            @if let Some(receipt) = &pause.receipt {
                h2 { "Receipt" }
                p.muted { "Signed by the audit key: verify it with " code { "pp receipt verify" } "." }
                p.data.mono { (receipt) }
            }
            h2 { "Webhooks" }
            @if webhooks.is_empty() { p.muted { "No webhook events." } }
            @for webhook in webhooks {
                section.card aria-label={"Webhook " (webhook.kind.as_str())} {
                    p {
                        strong { (webhook.kind.as_str()) } " to " span.mono { (webhook.url) } " · "
                        (status(webhook.status.as_str())) " · " (webhook.attempts) " attempt(s)"
                    }
                    @if !webhook.attempt_log.is_empty() {
                        div.table { table {
                            thead { tr { th scope="col" { "Attempt" } th scope="col" { "At" } th scope="col" { "Answer" } th scope="col" { "Time" } } }
                            tbody {
                                @for attempt in &webhook.attempt_log {
                                    tr {
                                        td { (attempt.attempt) }
                                        td { (time(attempt.attempted_at)) }
                                        td {
                                            @if let Some(code) = attempt.status_code { "HTTP " (code) " " }
                                            @if let Some(error) = &attempt.error { span.muted { (error) } }
                                        }
                                        td { (attempt.latency_ms) " ms" }
                                    }
                                }
                            }
                        } }
                    }
                    @if webhook.status == WebhookStatus::Failed {
                        form method="post" action={(BASE) "/pauses/" (id) "/webhooks/" (webhook.event_id) "/resend"} {
                            (csrf_field(chrome.csrf))
                            button.secondary type="submit" { "Resend" }
                        }
                    }
                }
            }
        },
    )
}

/// What the audit page shows.
pub struct AuditView<'a> {
    pub events: &'a [AuditEvent],
    pub next_query: Option<String>,
    pub verify: Option<&'a VerifyReport>,
    pub checkpoint: Option<&'a Checkpoint>,
    pub filters: &'a AuditFilters,
    /// The filters as the export takes them (times in RFC 3339).
    pub export_query: String,
    pub error: Option<&'a str>,
}

/// The audit page's filters, as the form holds them.
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
pub struct AuditFilters {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pause_id: String,
    /// Exactly as events name it: `api_key:<id>`, `recipient:<who>`, `system`…
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// A UTC day: on it or later.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub since: String,
    /// A UTC day: on it or earlier.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub until: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cursor: String,
}

pub fn audit(chrome: &Chrome<'_>, view: &AuditView<'_>) -> Markup {
    let export_query = &view.export_query;
    page(
        "Audit log",
        chrome,
        html! {
            h1 { "Audit log" }
            div.cards {
                section.card aria-labelledby="verify-title" {
                    h2 id="verify-title" { "Chain" }
                    @match view.verify {
                        Some(report) if report.ok => {
                            p { span.status.status-ok { "Verifies" } " · " (report.events_checked) " events checked since the last checkpoint" }
                            p.muted { "Head " span.mono { (report.head_hash.get(..16).unwrap_or(&report.head_hash)) "…" } }
                        }
                        Some(report) => {
                            p { span.status.status-bad { "Does not verify" } }
                            @if let Some(seq) = report.first_bad_seq { p { "First bad event: " (seq) } }
                            @if let Some(problem) = &report.problem { p { (problem) } }
                        }
                        None => { p.muted { "Could not verify just now." } }
                    }
                }
                section.card aria-labelledby="checkpoint-title" {
                    h2 id="checkpoint-title" { "Latest checkpoint" }
                    @if let Some(checkpoint) = view.checkpoint {
                        p { "Covers events 1 to " (checkpoint.seq) " · signed " (time(checkpoint.at)) }
                        p.muted { "Signed by key " span.mono { (checkpoint.key_id.get(..12).unwrap_or(&checkpoint.key_id)) "…" } }
                    } @else {
                        p.muted { "None yet." }
                    }
                }
                section.card aria-labelledby="export-title" {
                    h2 id="export-title" { "Export" }
                    p {
                        a href={(BASE) "/audit/export?format=jsonl&" (export_query)} { "JSON Lines" } " · "
                        a href={(BASE) "/audit/export?format=csv&" (export_query)} { "CSV" } " · "
                        a href={(BASE) "/audit/export?format=jsonl&bundle=true&" (export_query)} { "Bundle with proofs" }
                    }
                }
            }
            @if let Some(error) = view.error { p.notice.error role="alert" { (error) } }
            form.filters method="get" action={(BASE) "/audit"} role="search" aria-label="Filter events" {
                @let events: Vec<_> = AuditEventKind::ALL.iter().map(|k| (k.as_str(), k.as_str().to_owned())).collect();
                (select("event", "Event", &view.filters.event, &events))
                div { label for="pause_id" { "Pause id" } input id="pause_id" name="pause_id" value=(view.filters.pause_id) autocomplete="off"; }
                div { label for="actor" { "Actor" } input id="actor" name="actor" value=(view.filters.actor) placeholder="api_key:…" autocomplete="off"; }
                div { label for="since" { "From (UTC)" } input id="since" name="since" type="date" value=(view.filters.since); }
                div { label for="until" { "To (UTC)" } input id="until" name="until" type="date" value=(view.filters.until); }
                div { button type="submit" { "Filter" } }
            }
            div.table { table {
                caption.muted { "Oldest first" }
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "At" } th scope="col" { "Event" }
                    th.wide scope="col" { "Actor" } th scope="col" { "Details" }
                } }
                tbody {
                    @if view.events.is_empty() { tr { td colspan="5" { "No events match." } } }
                    @for event in view.events {
                        tr {
                            td { (event.seq) }
                            td { (time(event.occurred_at)) }
                            td {
                                (event.event.as_str())
                                @if let Some(pause) = event.pause_id {
                                    br; a href={(BASE) "/pauses/" (pause)} aria-label={"Pause " (pause)} { "pause" }
                                }
                            }
                            td.wide.mono { (event.actor) }
                            td.message { (data_line(&event.data, &[])) }
                        }
                    }
                }
            } }
            @if let Some(query) = &view.next_query {
                p.pager { a href={(BASE) "/audit?" (query)} { "Later events" } }
            }
        },
    )
}

/// The project's keys; a key just made is shown once, at the top.
pub fn keys(
    chrome: &Chrome<'_>,
    keys: &[KeyRecord],
    signed_in_with: crate::ids::KeyId,
    made: Option<(&str, &str)>,
    notice: Option<(bool, &str)>,
) -> Markup {
    page(
        "API keys",
        chrome,
        html! {
            h1 { "API keys" }
            @if let Some((name, key)) = made {
                div.notice.ok role="status" {
                    p { "The key " strong { (name) } " is made. Copy it now: it is shown only this once." }
                    p.secret id="new-key" { (key) }
                }
            }
            @if let Some((ok, text)) = notice {
                p class={"notice " (if ok { "ok" } else { "error" })} role="status" { (text) }
            }
            form.filters method="post" action={(BASE) "/keys"} aria-label="Create a key" {
                (csrf_field(chrome.csrf))
                div { label for="name" { "Name of the new key" } input id="name" name="name" required maxlength="100" placeholder="deploy-bot"; }
                div { button type="submit" { "Create key" } }
            }
            div.table { table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Starts with" } th.wide scope="col" { "Created" }
                    th scope="col" { "State" } th scope="col" { span.skip { "Actions" } }
                } }
                tbody {
                    @for key in keys {
                        tr {
                            td {
                                (key.name)
                                @if key.id == signed_in_with {
                                    " " span.muted { "(this session's key: revoking it signs you out)" }
                                }
                            }
                            td.mono { (key.prefix) "…" }
                            td.wide { (time(key.created_at)) }
                            td {
                                @if let Some(at) = key.revoked_at { span.status.status-cancelled { "revoked" } " " (time(at)) }
                                @else { span.status.status-ok { "live" } }
                            }
                            td {
                                @if key.revoked_at.is_none() {
                                    form.inline method="post" action={(BASE) "/keys/" (key.id) "/revoke"} {
                                        (csrf_field(chrome.csrf))
                                        button.danger type="submit" aria-label={"Revoke " (key.name)} { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        },
    )
}

pub fn charts(chrome: &Chrome<'_>, charts: Vec<Markup>) -> Markup {
    page(
        "Charts",
        chrome,
        html! {
            h1 { "Charts" }
            p.muted { "Pauses created in the last " (super::charts::DAYS) " days, by day in UTC." }
            div.charts { @for chart in charts { (chart) } }
        },
    )
}
