//! How the client commands print: tables that fit the terminal (plain columns when stdout
//! is not one), times both relative and absolute, JSON on request.

use std::io::IsTerminal;

use comfy_table::presets::{NOTHING, UTF8_FULL_CONDENSED};
use comfy_table::{ContentArrangement, Table};
use jiff::Timestamp;
use pausepoint_api::{shown_recipient, AuditEvent, Pause};
use serde::Serialize;

/// Prints `value` as indented JSON on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table styled for where stdout goes.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    if std::io::stdout().is_terminal() {
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        table.load_preset(NOTHING);
    }
    table.set_header(header.to_vec());
    table
}

/// `text` cut to `max` characters, on one line.
pub fn cut(text: &str, max: usize) -> String {
    let line = text.replace(['\n', '\r'], " ");
    if line.chars().count() <= max {
        line
    } else {
        let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// "in 3h 52m (2026-11-22 11:27 UTC)", "5m ago (…)".
pub fn when(at: Timestamp) -> String {
    let now = Timestamp::now();
    let seconds = at.as_second() - now.as_second();
    let span = short_duration(seconds.unsigned_abs());
    let absolute = at.strftime("%Y-%m-%d %H:%M UTC");
    if seconds > 0 {
        format!("in {span} ({absolute})")
    } else {
        format!("{span} ago ({absolute})")
    }
}

/// "3h 52m", "45s", "2d 4h".
pub fn short_duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// What the pause came to, in a few words.
pub fn outcome(pause: &Pause) -> String {
    match (&pause.response_choice, &pause.response_text) {
        (Some(choice), Some(text)) => format!("{choice} — {}", cut(text, 40)),
        (Some(choice), None) => choice.clone(),
        _ => String::new(),
    }
}

/// One pause, field by field.
pub fn pause_details(pause: &Pause) {
    let mut table = table(&["FIELD", "VALUE"]);
    let mut row = |name: &str, value: String| {
        table.add_row(vec![name.to_owned(), value]);
    };
    row("pause_id", pause.pause_id.to_string());
    row("status", pause.status.to_string());
    row(
        "to",
        format!(
            "{} ({})",
            shown_recipient(pause.channel, &pause.recipient),
            pause.channel
        ),
    );
    row("message", pause.message.clone());
    row("options", pause.options.join(" | "));
    row(
        "default",
        pause.timeout_default.clone().unwrap_or_else(|| "-".into()),
    );
    row(
        "choice",
        pause.response_choice.clone().unwrap_or_else(|| "-".into()),
    );
    if let Some(text) = &pause.response_text {
        row("note", text.clone());
    }
    if let Some(at) = pause.response_at {
        row("decided", when(at));
    }
    row("created", when(pause.created_at));
    row("expires", when(pause.expires_at));
    if let Some(delivery) = &pause.delivery {
        let mut line = format!("{} after {} attempt(s)", delivery.status, delivery.attempts);
        if let Some(error) = &delivery.last_error {
            line.push_str(&format!(": {error}"));
        }
        row("delivery", line);
    }
    if let Some(quorum) = &pause.quorum {
        row(
            "quorum",
            format!(
                "{} needs {} votes; any other answer decides at once",
                quorum.option, quorum.count
            ),
        );
    }
    if let Some(every) = pause.remind_every_seconds {
        row("reminders", format!("every {}", short_duration(every)));
    }
    if let Some(metadata) = &pause.metadata {
        row(
            "metadata",
            serde_json::Value::Object(metadata.clone()).to_string(),
        );
    }
    println!("{table}");
    if pause.approvers.len() > 1 {
        println!();
        approver_rows(pause);
    }
}

/// The approvers of a pause, one per row: who, when asked, how far their notice got,
/// and their vote.
pub fn approver_rows(pause: &Pause) {
    let mut table = table(&["APPROVER", "TIER", "ASKED", "DELIVERY", "VIEWED", "VOTE"]);
    for approver in &pause.approvers {
        let delivery = approver
            .delivery
            .as_ref()
            .map_or("-".to_owned(), |d| match &d.last_error {
                Some(error) => format!("{} ({})", d.status, cut(error, 30)),
                None => d.status.to_string(),
            });
        let vote = approver.vote.as_ref().map_or("-".to_owned(), |vote| {
            let mut shown = format!("{} {}", vote.choice, when(vote.at));
            if let Some(text) = &vote.text {
                shown.push_str(&format!(" — {}", cut(text, 30)));
            }
            shown
        });
        table.add_row(vec![
            format!(
                "{} ({})",
                shown_recipient(approver.channel, &approver.recipient),
                approver.channel
            ),
            approver.tier.to_string(),
            when(approver.notify_at),
            delivery,
            approver.viewed_at.map_or("-".to_owned(), when),
            vote,
        ]);
    }
    println!("{table}");
}

/// Pauses, one per row.
pub fn pause_rows(pauses: &[Pause]) {
    let mut table = table(&[
        "PAUSE ID", "STATUS", "TO", "MESSAGE", "ANSWER", "CREATED", "EXPIRES",
    ]);
    for pause in pauses {
        table.add_row(vec![
            pause.pause_id.to_string(),
            pause.status.to_string(),
            shown_recipient(pause.channel, &pause.recipient),
            cut(&pause.message, 48),
            outcome(pause),
            when(pause.created_at),
            when(pause.expires_at),
        ]);
    }
    println!("{table}");
}

/// Audit events, one per row.
pub fn audit_rows(events: &[AuditEvent]) {
    let mut table = table(&["SEQ", "TIME", "EVENT", "PAUSE ID", "ACTOR", "DETAIL"]);
    for event in events {
        let data = &event.data;
        let detail = ["response_choice", "error", "via", "name"]
            .iter()
            .find_map(|field| data.get(*field).and_then(|v| v.as_str()).map(str::to_owned))
            .or_else(|| {
                data.get("message")
                    .and_then(|v| v.as_str())
                    .map(|m| cut(m, 40))
            })
            .unwrap_or_default();
        table.add_row(vec![
            event.seq.to_string(),
            event.occurred_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            event.event.to_string(),
            event
                .pause_id
                .map(|id| id.to_string())
                .unwrap_or_else(|| "-".into()),
            event.actor.clone(),
            cut(&detail, 60),
        ]);
    }
    println!("{table}");
}
