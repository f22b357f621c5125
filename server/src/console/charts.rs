//! The console's charts, drawn on the server as SVG: bars with labelled axes, a legend,
//! and a title and description a screen reader reads. Colours come from the stylesheet
//! (classes `series-0`…), so they follow light and dark mode.

use jiff::{SignedDuration, Timestamp};
use maud::{html, Markup};
use pausepoint_api::PauseStatus;

use crate::store::activity::{Activity, MAX_ROWS};

/// How many days the charts look back.
pub const DAYS: i64 = 14;

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 250.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 56.0;

/// One series of a bar chart: its name (for the legend), its colour (`series-N` in the
/// stylesheet: 0 blue for what went well, 1 orange for failures, 2 grey for the rest) and
/// a value per category.
pub struct Series {
    pub name: &'static str,
    pub colour: usize,
    pub values: Vec<f64>,
}

/// A bar chart; with several series, bars are stacked.
pub struct BarChart<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub description: String,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Shown under the chart when not empty: what a reader must know to trust it.
    pub note: String,
}

/// A round number at or above `max` for the top of the y axis, and the step of its ticks.
fn axis(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (4.0, 1.0);
    }
    let rough = max / 4.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * magnitude);
    let step = if max <= 4.0 { step.max(1.0) } else { step };
    ((max / step).ceil() * step, step)
}

fn number(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

struct Bar {
    colour: usize,
    x: f64,
    y: f64,
    height: f64,
    tip: String,
}

impl BarChart<'_> {
    pub fn render(&self) -> Markup {
        let totals: Vec<f64> = (0..self.categories.len())
            .map(|i| self.series.iter().map(|s| s.values[i]).sum())
            .collect();
        let (top, step) = axis(totals.iter().copied().fold(0.0, f64::max));
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let slot = plot_w / self.categories.len().max(1) as f64;
        let bar_width = (slot * 0.7).min(48.0);
        let y = |value: f64| TOP + plot_h - value / top * plot_h;
        // Each category's series stacked from the axis up; empty ones draw nothing.
        let mut bars = Vec::new();
        for (i, category) in self.categories.iter().enumerate() {
            let mut base = 0.0;
            for series in &self.series {
                let value = series.values[i];
                if value > 0.0 {
                    bars.push(Bar {
                        colour: series.colour,
                        x: LEFT + slot * i as f64 + (slot - bar_width) / 2.0,
                        y: y(base + value),
                        height: y(base) - y(base + value),
                        tip: format!("{category}, {}: {}", series.name, number(value)),
                    });
                }
                base += value;
            }
        }
        let ticks: Vec<f64> = (0..=((top / step).round() as usize))
            .map(|i| i as f64 * step)
            .collect();
        // Every category labelled when there are few; else about five labels, so they do
        // not run into each other at phone width.
        let n = self.categories.len();
        let every = if n > 7 { n.div_ceil(5) } else { 1 };
        let title_id = format!("{}-title", self.id);
        let desc_id = format!("{}-desc", self.id);
        html! {
            figure.chart id=(self.id) {
                figcaption { (self.title) }
                svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img"
                    aria-labelledby={(title_id) " " (desc_id)} {
                    title id=(title_id) { (self.title) }
                    desc id=(desc_id) { (self.description) }
                    @for tick in &ticks {
                        line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(*tick)) y2=(y(*tick)) {}
                        text.tick x=(LEFT - 6.0) y=(y(*tick) + 4.0) text-anchor="end" { (number(*tick)) }
                    }
                    @for bar in &bars {
                        rect class={"bar series-" (bar.colour)} x=(bar.x) width=(bar_width)
                            y=(bar.y) height=(bar.height) {
                            title { (bar.tip) }
                        }
                    }
                    @for (i, category) in self.categories.iter().enumerate() {
                        @let x = LEFT + slot * i as f64 + (slot - bar_width) / 2.0;
                        @if i % every == 0 {
                            text.tick x=(x + bar_width / 2.0) y=(TOP + plot_h + 20.0) text-anchor="middle" { (category) }
                        }
                    }
                    line.axis x1=(LEFT) x2=(WIDTH - RIGHT) y1=(TOP + plot_h) y2=(TOP + plot_h) {}
                    line.axis x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(TOP + plot_h) {}
                    text.label x=(LEFT + plot_w / 2.0) y=(HEIGHT - 8.0) text-anchor="middle" { (self.x_label) }
                    text.label x="14" y=(TOP + plot_h / 2.0) text-anchor="middle"
                        transform={"rotate(-90 14 " (TOP + plot_h / 2.0) ")"} { (self.y_label) }
                }
                @if self.series.len() > 1 {
                    ul.legend {
                        @for series in &self.series {
                            li { span class={"swatch series-" (series.colour)} aria-hidden="true" {} (series.name) }
                        }
                    }
                }
                @if !self.note.is_empty() {
                    p.note { (self.note) }
                }
            }
        }
    }
}

/// The days of the window, oldest first, as (start, label).
fn days(now: Timestamp) -> Vec<(Timestamp, String)> {
    let today = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .start_of_day()
        .map(|d| d.timestamp())
        .unwrap_or(now);
    (0..DAYS)
        .rev()
        .map(|back| {
            let start = today - SignedDuration::from_hours(24 * back);
            let label = start.strftime("%b %-d").to_string();
            (start, label)
        })
        .collect()
}

/// The index of the day `at` falls in, if inside the window.
fn day_of(days: &[(Timestamp, String)], at: Timestamp) -> Option<usize> {
    let first = days.first()?.0;
    if at < first {
        return None;
    }
    let index = (at.duration_since(first).as_secs() / 86_400) as usize;
    (index < days.len()).then_some(index)
}

/// Where a time to decision falls, in minutes.
const BUCKETS: [(&str, f64); 6] = [
    ("<1m", 1.0),
    ("1–5m", 5.0),
    ("5–15m", 15.0),
    ("15–60m", 60.0),
    ("1–4h", 240.0),
    (">4h", f64::INFINITY),
];

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// The note under a chart whose read reached [`MAX_ROWS`]: it counts only the newest of
/// the window's rows, and says so rather than show a partial count as whole.
fn capped(rows: usize, what: &str) -> String {
    if rows as i64 >= MAX_ROWS {
        format!(
            "Counted from the newest {} {what} only: older ones of these {DAYS} days are left out (the audit export has them all).",
            thousands(MAX_ROWS)
        )
    } else {
        String::new()
    }
}

/// `n` with a comma between thousands, as people read counts.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The four charts of the console's Charts page.
pub fn all(activity: &Activity, now: Timestamp) -> Vec<Markup> {
    let decisions_capped = capped(activity.decided.len(), "decisions");
    let days = days(now);
    let labels: Vec<String> = days.iter().map(|(_, label)| label.clone()).collect();
    let responded: Vec<_> = activity
        .decided
        .iter()
        .filter(|d| d.status == PauseStatus::Responded)
        .collect();
    let minutes = |d: &crate::store::activity::Decided| {
        d.decided_at.duration_since(d.created_at).as_secs_f64() / 60.0
    };

    let mut distribution = vec![0.0; BUCKETS.len()];
    let mut per_day: Vec<Vec<f64>> = vec![Vec::new(); days.len()];
    for decided in &responded {
        let m = minutes(decided);
        let bucket = BUCKETS
            .iter()
            .position(|(_, upper)| m < *upper)
            .unwrap_or(0);
        distribution[bucket] += 1.0;
        if let Some(day) = day_of(&days, decided.decided_at) {
            per_day[day].push(m);
        }
    }
    let overall = median(&mut responded.iter().map(|d| minutes(d)).collect::<Vec<_>>());
    let time_to_decision = BarChart {
        id: "time-to-decision",
        title: "Time to decision",
        description: format!(
            "How long people took to answer, over the last {DAYS} days: {} answers, median {} minutes.",
            responded.len(),
            number(overall)
        ),
        categories: BUCKETS.iter().map(|(label, _)| (*label).to_owned()).collect(),
        series: vec![Series {
            name: "answers",
            colour: 0,
            values: distribution,
        }],
        x_label: "time to answer (m minutes, h hours)",
        y_label: "answers",
        note: decisions_capped.clone(),
    };
    // In seconds while answers come within two minutes: a chart of zeros says nothing.
    let medians: Vec<f64> = per_day.iter_mut().map(|v| median(v)).collect();
    let (unit, scale) = if medians.iter().all(|m| *m < 2.0) {
        ("seconds", 60.0)
    } else {
        ("minutes", 1.0)
    };
    let median_per_day = BarChart {
        id: "median-per-day",
        title: "Median time to decision per day",
        description: format!("The median {unit} to an answer, per day, over the last {DAYS} days."),
        categories: labels.clone(),
        series: vec![Series {
            name: "median",
            colour: 0,
            values: medians
                .iter()
                .map(|m| (m * scale * 10.0).round() / 10.0)
                .collect(),
        }],
        x_label: "day (UTC)",
        y_label: unit,
        note: decisions_capped.clone(),
    };

    let outcomes = [
        PauseStatus::Responded,
        PauseStatus::TimedOut,
        PauseStatus::Cancelled,
    ];
    let mut counts = vec![vec![0.0; days.len()]; outcomes.len()];
    for decided in &activity.decided {
        if let (Some(n), Some(day)) = (
            outcomes.iter().position(|s| *s == decided.status),
            day_of(&days, decided.decided_at),
        ) {
            counts[n][day] += 1.0;
        }
    }
    let totals: Vec<f64> = counts.iter().map(|c| c.iter().sum()).collect();
    let mut counts = counts.into_iter();
    let mut next = || counts.next().unwrap_or_default();
    let outcomes_chart = BarChart {
        id: "outcomes",
        title: "Outcomes per day",
        description: format!(
            "Pauses decided per day over the last {DAYS} days: {} responded, {} timed out, {} cancelled.",
            totals[0], totals[1], totals[2]
        ),
        categories: labels.clone(),
        series: vec![
            Series {
                name: "responded",
                colour: 0,
                values: next(),
            },
            Series {
                name: "timed out",
                colour: 1,
                values: next(),
            },
            Series {
                name: "cancelled",
                colour: 2,
                values: next(),
            },
        ],
        x_label: "day (UTC)",
        y_label: "pauses",
        note: decisions_capped,
    };

    let deliveries = BarChart {
        id: "delivery-failures",
        title: "Delivery failures by channel",
        description: format!(
            "Notices that failed, per channel, for pauses of the last {DAYS} days: {}.",
            if activity.deliveries.is_empty() {
                "none sent".to_owned()
            } else {
                activity
                    .deliveries
                    .iter()
                    .map(|c| format!("{} {} of {}", c.channel, c.failed, c.total))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        categories: activity
            .deliveries
            .iter()
            .map(|c| c.channel.to_string())
            .collect(),
        series: vec![
            Series {
                name: "sent",
                colour: 0,
                values: activity
                    .deliveries
                    .iter()
                    .map(|c| (c.total - c.failed) as f64)
                    .collect(),
            },
            Series {
                name: "failed",
                colour: 1,
                values: activity
                    .deliveries
                    .iter()
                    .map(|c| c.failed as f64)
                    .collect(),
            },
        ],
        x_label: "channel",
        y_label: "notices",
        note: String::new(),
    };

    let mut failed = vec![0.0; days.len()];
    let mut fine = vec![0.0; days.len()];
    for webhook in &activity.webhooks {
        if let Some(day) = day_of(&days, webhook.created_at) {
            if webhook.failed {
                failed[day] += 1.0;
            } else {
                fine[day] += 1.0;
            }
        }
    }
    let failed_total: f64 = failed.iter().sum();
    let webhooks = BarChart {
        id: "webhook-failures",
        title: "Webhook failures per day",
        description: format!(
            "Webhook events that failed after every attempt, per day, over the last {DAYS} days: {} of {}.",
            failed_total,
            activity.webhooks.len(),
        ),
        categories: labels,
        series: vec![
            Series {
                name: "delivered or pending",
                colour: 0,
                values: fine,
            },
            Series {
                name: "failed",
                colour: 1,
                values: failed,
            },
        ],
        x_label: "day (UTC)",
        y_label: "events",
        note: capped(activity.webhooks.len(), "webhook events"),
    };
    vec![
        time_to_decision.render(),
        median_per_day.render(),
        outcomes_chart.render(),
        deliveries.render(),
        webhooks.render(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_ends_on_a_round_number_above_the_highest_bar() {
        assert_eq!(axis(0.0), (4.0, 1.0));
        assert_eq!(axis(3.0), (3.0, 1.0));
        assert_eq!(axis(7.0), (8.0, 2.0));
        assert_eq!(axis(95.0), (100.0, 25.0));
        assert_eq!(axis(1234.0), (1500.0, 500.0));
    }

    #[test]
    fn a_chart_whose_read_was_capped_says_so() {
        use crate::store::activity::{Decided, WebhookOutcome};
        let now = Timestamp::now();
        let decided = Decided {
            created_at: now - SignedDuration::from_mins(5),
            status: PauseStatus::Responded,
            decided_at: now - SignedDuration::from_mins(1),
        };
        let webhook = WebhookOutcome {
            created_at: now,
            failed: false,
        };
        let charts = |decisions: usize, webhooks: usize| {
            all(
                &Activity {
                    decided: vec![decided.clone(); decisions],
                    deliveries: Vec::new(),
                    webhooks: vec![webhook.clone(); webhooks],
                },
                now,
            )
            .into_iter()
            .map(Markup::into_string)
            .collect::<Vec<_>>()
        };
        let whole = charts(10, 10);
        assert!(whole.iter().all(|c| !c.contains("Counted from the newest")));
        let full = MAX_ROWS as usize;
        let capped = charts(full, full);
        let notes = |id: &str| {
            capped
                .iter()
                .find(|c| c.contains(&format!("id=\"{id}")))
                .map(|c| {
                    c.matches("<p class=\"note\">Counted from the newest 20,000")
                        .count()
                })
        };
        for id in [
            "time-to-decision",
            "median-per-day",
            "outcomes",
            "webhook-failures",
        ] {
            assert!(
                notes(id).is_some_and(|n| n > 0),
                "{id} does not say it was capped"
            );
        }
        assert_eq!(
            notes("delivery-failures"),
            Some(0),
            "deliveries are counted whole"
        );
    }

    #[test]
    fn counts_read_with_commas_between_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-1_000), "-1,000");
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_chart_escapes_its_labels_and_draws_one_bar_per_value() {
        let chart = BarChart {
            id: "c",
            title: "<b>t</b>",
            description: "d".into(),
            categories: vec!["<script>".into(), "b".into()],
            series: vec![Series {
                name: "s",
                colour: 0,
                values: vec![2.0, 0.0],
            }],
            x_label: "x",
            y_label: "y",
            note: String::new(),
        }
        .render()
        .into_string();
        assert!(!chart.contains("<script>"));
        assert!(chart.contains("&lt;script&gt;"));
        assert_eq!(chart.matches("<rect").count(), 1);
    }
}
