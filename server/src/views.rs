//! What humans see: the response page in each of its states, and the HTML of the email.
//! maud checks the markup at compile time and escapes every string it interpolates. The
//! page's style is inline and pinned by hash in the Content-Security-Policy, so it loads
//! in one request and nothing else can run on it.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use pausepoint_api::{shown_recipient, Approver, Pause, PauseStatus, Vote};
use sha2::{Digest, Sha256};

use crate::domain::projects;

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#101418;--bg:#fff;--muted:#56606b;--accent:#1a56db;--on-accent:#fff;--line:#d0d5dd;\
--field:#6b7682;--error:#b42318;--ok:#0a7d36}\
@media (prefers-color-scheme:dark){:root{--fg:#eef1f4;--bg:#111417;--muted:#a4adb6;--accent:#7aa5ff;--on-accent:#0b1220;\
--line:#3a4048;--field:#8a949f;--error:#ff8a80;--ok:#4cc27a}}\
*{box-sizing:border-box}\
body{margin:0;font:17px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:34rem;margin:0 auto;padding:1.25rem 1rem 2.5rem}\
.from{color:var(--muted);font-size:.9rem;margin:0 0 .5rem}\
h1{font-size:1.35rem;line-height:1.3;margin:0 0 .75rem;white-space:pre-wrap;overflow-wrap:anywhere}\
.meta{color:var(--muted);font-size:.9rem;margin:0 0 .5rem}\
.meta strong{color:var(--fg)}\
.last{margin-bottom:1.25rem}\
.hint{font-weight:600;margin:0 0 .75rem}\
.error{color:var(--error);font-weight:600;margin:0 0 1rem}\
button{display:block;width:100%;min-height:3.25rem;margin:0 0 .75rem;padding:.75rem 1rem;font:inherit;font-weight:600;\
border-radius:.75rem;border:2px solid var(--accent);background:var(--bg);color:var(--accent);overflow-wrap:anywhere;cursor:pointer}\
button.chosen{background:var(--accent);color:var(--on-accent)}\
label{display:block;font-weight:600;margin:0 0 .35rem}\
textarea{display:block;width:100%;min-height:5rem;font:inherit;padding:.6rem;border:1px solid var(--field);border-radius:.5rem;\
margin:0 0 1.25rem;background:var(--bg);color:var(--fg)}\
.state{font-size:1.15rem;font-weight:600;margin:0 0 .5rem}\
.done{color:var(--ok)}\
.quote{border-left:3px solid var(--line);padding-left:.75rem;color:var(--muted);white-space:pre-wrap;overflow-wrap:anywhere}\
.votes{margin:0 0 1.25rem}.votes ul{margin:0 0 .5rem;padding-left:1.1rem;overflow-wrap:anywhere}";

/// Rewrites each `<time datetime>` in the reader's own time zone and language. Without
/// scripts the page still reads: the times stay in UTC.
const SCRIPT: &str = "for(const t of document.querySelectorAll('time[datetime]')){const d=new Date(t.dateTime);\
if(!isNaN(d))t.textContent=d.toLocaleString([],{weekday:'short',month:'short',day:'numeric',hour:'numeric',\
minute:'2-digit',timeZoneName:'short'})}";

/// The Content-Security-Policy of every page: nothing but its own inline style and
/// script, forms posting back to this server, and no framing.
pub fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let style = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        let script = STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{style}'; script-src 'sha256-{script}'; \
             img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex, nofollow";
                meta name="referrer" content="no-referrer";
                // An empty icon, so the browser does not ask for /favicon.ico.
                link rel="icon" href="data:,";
                title { (title) " · PausePoint" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// What the question page needs to show.
pub struct Question<'a> {
    pub pause: &'a Pause,
    pub project: &'a str,
    pub now: Timestamp,
    /// An option picked by a button in the email or Slack message, still to be confirmed.
    pub preselected: Option<&'a str>,
    /// Why the last answer was not taken.
    pub error: Option<&'a str>,
    /// Which of the pause's approvers the link is for.
    pub approver: u32,
}

/// The page with the question and one button per option.
pub fn question(q: &Question<'_>) -> Markup {
    let pause = q.pause;
    let left = pause.expires_at.duration_since(q.now);
    layout(
        "Decision needed",
        html! {
            (asked_by(q.project))
            h1 { (pause.message) }
            p.meta {
                strong { (human_duration(left)) " left" } " · answer by " (deadline(pause.expires_at))
            }
            p.meta.last { (if_nobody_answers(pause)) }
            (votes(pause, Some(q.approver), q.now))
            @if let Some(error) = q.error { p.error role="alert" { (error) } }
            @if let Some(choice) = q.preselected {
                p.hint { "You picked “" (choice) "”. Tap it again to confirm." }
            }
            form method="post" {
                @if pause.allow_text_response {
                    label for="note" { "Add a note (optional)" }
                    textarea id="note" name="note" maxlength="2000" {}
                }
                @for option in &pause.options {
                    @let chosen = q.preselected == Some(option.as_str());
                    button type="submit" name="choice" value=(option) class=[chosen.then_some("chosen")] { (option) }
                }
            }
        },
    )
}

/// After a tap: the vote recorded, and the pause decided by it or still waiting for more.
pub fn recorded(pause: &Pause, project: &str, approver: u32, now: Timestamp) -> Markup {
    let vote = pause
        .approvers
        .get(approver as usize)
        .and_then(|a| a.vote.as_ref());
    let choice = vote
        .map(|v| v.choice.as_str())
        .or(pause.response_choice.as_deref())
        .unwrap_or("");
    let note = vote.and_then(|v| v.text.as_ref());
    layout(
        "Answer recorded",
        html! {
            (asked_by(project))
            p.state.done { "✓ Your answer was recorded: " (choice) }
            p.quote { (pause.message) }
            @if let Some(text) = note {
                p.meta { "Your note:" }
                p.quote { (text) }
            }
            @if pause.status == PauseStatus::Pending {
                (votes(pause, Some(approver), now))
            } @else if pause.approvers.len() > 1 {
                p.meta { "Decided: " strong { (pause.response_choice.as_deref().unwrap_or("")) } "." }
                (votes(pause, Some(approver), now))
            }
            p.meta { "You can close this page." }
        },
    )
}

/// An approver's second tap: one vote each.
pub fn already_voted(pause: &Pause, project: &str, approver: u32, now: Timestamp) -> Markup {
    let vote = pause
        .approvers
        .get(approver as usize)
        .and_then(|a| a.vote.as_ref());
    layout(
        "Already answered",
        html! {
            (asked_by(project))
            p.state {
                "You already answered"
                @if let Some(vote) = vote { ": " strong { (vote.choice) } " (" (deadline(vote.at)) ")" }
                ". Each approver answers once."
            }
            p.quote { (pause.message) }
            (votes(pause, Some(approver), now))
        },
    )
}

/// The votes so far and who else was asked, for a pause with several approvers: "1 of 2
/// approvals", then each vote with who gave it and when.
fn votes(pause: &Pause, viewer: Option<u32>, now: Timestamp) -> Markup {
    if pause.approvers.len() < 2 {
        return html! {};
    }
    let mut given: Vec<(usize, &Approver, &Vote)> = pause
        .approvers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.vote.as_ref().map(|v| (i, a, v)))
        .collect();
    given.sort_by_key(|(_, _, v)| v.at);
    let others: Vec<String> = pause
        .approvers
        .iter()
        .enumerate()
        .filter(|(i, a)| Some(*i as u32) != viewer && a.vote.is_none() && a.notify_at <= now)
        .map(|(_, a)| shown(a))
        .collect();
    let progress = match &pause.quorum {
        Some(quorum) => {
            let approvals = given
                .iter()
                .filter(|(_, _, v)| v.choice == quorum.option)
                .count();
            (
                format!("{approvals} of {} approvals", quorum.count),
                format!(
                    "“{}” needs {} votes; any other answer decides at once.",
                    quorum.option, quorum.count
                ),
            )
        }
        None => (
            format!("{} of {} answered", given.len(), pause.approvers.len()),
            "The first answer decides.".to_owned(),
        ),
    };
    html! {
        section.votes aria-label="Votes" {
            p.meta { strong { (progress.0) } " · " (progress.1) }
            @if !given.is_empty() {
                ul.meta {
                    @for (i, approver, vote) in &given {
                        li {
                            @if Some(*i as u32) == viewer { "You" } @else { (shown(approver)) }
                            " chose " strong { (vote.choice) } " at " (deadline(vote.at))
                        }
                    }
                }
            }
            @if !others.is_empty() {
                p.meta { "Also asked: " (others.join(", ")) }
            }
        }
    }
}

fn shown(approver: &Approver) -> String {
    shown_recipient(approver.channel, &approver.recipient)
}

/// Who decided a pause that was answered: the approver whose vote decided it.
fn decided_by(pause: &Pause) -> Option<&Approver> {
    let choice = pause.response_choice.as_deref()?;
    pause
        .approvers
        .iter()
        .filter(|a| a.vote.as_ref().is_some_and(|v| v.choice == choice))
        .max_by_key(|a| a.vote.as_ref().map(|v| v.at))
}

/// A pause that has left pending, seen through any of its links.
pub fn decided(pause: &Pause, project: &str) -> Markup {
    let at = html! { @if let Some(at) = pause.response_at { " (" (deadline(at)) ")" } };
    let by = html! {
        @if pause.approvers.len() > 1 {
            @if let Some(approver) = decided_by(pause) { " by " (shown(approver)) }
        }
    };
    let (title, state) = match pause.status {
        PauseStatus::Responded => (
            "Already answered",
            html! { "This question was already answered: " strong { (pause.response_choice.as_deref().unwrap_or("")) } (by) (at) "." },
        ),
        PauseStatus::TimedOut | PauseStatus::Pending => (
            "Time is up",
            html! {
                "Nobody answered in time (" (deadline(pause.expires_at)) ")."
                @match pause.response_choice.as_ref().or(pause.timeout_default.as_ref()) {
                    Some(default) => { " The default was applied: " strong { (default) } "." }
                    None => { " The request ended without an answer." }
                }
            },
        ),
        PauseStatus::Cancelled => (
            "Withdrawn",
            html! { "The question was withdrawn by whoever asked it" (at) ". Nothing more to do." },
        ),
    };
    layout(
        title,
        html! {
            (asked_by(project))
            p.state { (state) }
            p.quote { (pause.message) }
            (votes(pause, None, pause.response_at.unwrap_or(pause.expires_at)))
        },
    )
}

/// Any link that does not open a pause: mistyped, cut off, forged or unknown.
pub fn invalid_link() -> Markup {
    layout(
        "Link not valid",
        html! {
            p.state { "This link is not valid." }
            p.meta { "It may have been cut off or mistyped. Open it again from the message you received." }
        },
    )
}

/// A genuine link past its end.
pub fn expired_link() -> Markup {
    layout(
        "Link expired",
        html! {
            p.state { "This link has expired." }
            p.meta { "The question it was for is closed." }
        },
    )
}

/// A request the page cannot read.
pub fn bad_request(message: &str) -> Markup {
    layout("Something went wrong", html! { p.state { (message) } })
}

/// The HTML part of the email: the question and a button per option, each opening the
/// page with that option picked.
pub fn email(pause: &Pause, project: &str, link: &str, now: Timestamp) -> Markup {
    let left = pause.expires_at.duration_since(now);
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; meta name="viewport" content="width=device-width, initial-scale=1"; }
            body style="margin:0;padding:24px 16px;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#101418;background:#fff" {
                div style="max-width:34rem;margin:0 auto" {
                    @if let Some(project) = projects::shown_name(project) {
                        p style="color:#56606b;font-size:14px;margin:0 0 8px" { "Decision requested by " strong { (project) } }
                    }
                    p style="font-size:20px;line-height:1.3;font-weight:600;margin:0 0 12px;white-space:pre-wrap" { (pause.message) }
                    p style="color:#56606b;font-size:14px;margin:0 0 20px" {
                        strong style="color:#101418" { (human_duration(left)) " left" } " · answer by " (clock(pause.expires_at)) "."
                        br;
                        (if_nobody_answers(pause))
                    }
                    @for option in &pause.options {
                        a href=(choice_link(link, option))
                          style="display:block;margin:0 0 12px;padding:14px 16px;border:2px solid #1a56db;border-radius:12px;color:#1a56db;font-weight:600;text-align:center;text-decoration:none" {
                            (option)
                        }
                    }
                    p style="color:#56606b;font-size:13px;margin:20px 0 0" { "Each button opens a page where one more tap confirms your answer." }
                }
            }
        }
    }
}

/// The link that opens the page with `option` picked.
pub fn choice_link(link: &str, option: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(option.as_bytes()).collect();
    format!("{link}?choice={encoded}")
}

/// "3 hours 52 minutes", "45 seconds": how long is left, for people.
pub fn human_duration(left: SignedDuration) -> String {
    let seconds = left.as_secs().max(0);
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let (days, hours, minutes) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    if days > 0 {
        format!("{} {}", plural(days, "day"), plural(hours, "hour"))
    } else if hours > 0 {
        format!("{} {}", plural(hours, "hour"), plural(minutes, "minute"))
    } else if minutes > 0 {
        plural(minutes, "minute")
    } else {
        plural(seconds, "second")
    }
}

/// A time to the minute, in UTC: the server knows no reader's time zone.
pub fn clock(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// A time on the page: in UTC, rewritten in the reader's own zone where scripts run.
fn deadline(at: Timestamp) -> Markup {
    html! { time datetime=(pausepoint_api::time::format(&at)) { (clock(at)) } }
}

/// Who asks, when the project has a name worth showing.
fn asked_by(project: &str) -> Markup {
    html! {
        @if let Some(project) = projects::shown_name(project) {
            p.from { "Decision requested by " strong { (project) } }
        }
    }
}

/// What happens if nobody answers, said every time, default or none.
pub fn if_nobody_answers(pause: &Pause) -> Markup {
    html! {
        @match &pause.timeout_default {
            Some(default) => { "If nobody answers by then: " strong { (default) } "." }
            None => { "If nobody answers by then, the request ends without an answer." }
        }
    }
}

/// The same, in plain text.
pub fn if_nobody_answers_text(pause: &Pause) -> String {
    match &pause.timeout_default {
        Some(default) => format!("If nobody answers by then: {default}."),
        None => "If nobody answers by then, the request ends without an answer.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people() {
        assert_eq!(
            human_duration(SignedDuration::from_secs(4 * 3600 - 1)),
            "3 hours 59 minutes"
        );
        assert_eq!(human_duration(SignedDuration::from_secs(90)), "1 minute");
        assert_eq!(human_duration(SignedDuration::from_secs(45)), "45 seconds");
        assert_eq!(human_duration(SignedDuration::from_secs(-5)), "0 seconds");
        assert_eq!(
            human_duration(SignedDuration::from_hours(49)),
            "2 days 1 hour"
        );
    }

    #[test]
    fn choice_links_are_encoded() {
        assert_eq!(
            choice_link("https://x/r/t", "Edit first & send"),
            "https://x/r/t?choice=Edit+first+%26+send"
        );
    }
}
