//! Email over SMTP with lettre: a text part and an HTML part with a button per option.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use url::Url;

use super::Notice;
use crate::config::SmtpConfig;
use crate::domain::projects;
use crate::views;
use crate::work::outcome::SendOutcome;

/// A configured SMTP server and sender.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Smtp {
    /// Reads `smtp://[user:pass@]host[:port]` (STARTTLS, required: a server that does
    /// not offer it gets neither the password nor the mail), `smtps://…` (TLS from the
    /// first byte) or `smtp://…?tls=none` (plain, only to this machine, or to a private
    /// network with `--allow-private-network`).
    pub fn new(config: &SmtpConfig, allow_private_network: bool) -> Result<Smtp, String> {
        let url =
            Url::parse(config.url.expose()).map_err(|_| "--smtp-url is not a URL".to_owned())?;
        let host = url.host_str().ok_or("--smtp-url has no host")?.to_owned();
        let tls_parameters =
            || TlsParameters::new(host.clone()).map_err(|e| format!("TLS for {host}: {e}"));
        let plain = url
            .query_pairs()
            .any(|(name, value)| name == "tls" && value == "none");
        let (tls, default_port) = match (url.scheme(), plain) {
            ("smtp", false) => (Tls::Required(tls_parameters()?), 587),
            ("smtp", true) => {
                plain_allowed(&url, allow_private_network)?;
                (Tls::None, 25)
            }
            ("smtps", false) => (Tls::Wrapper(tls_parameters()?), 465),
            ("smtps", true) => {
                return Err("--smtp-url: smtps:// and tls=none contradict each other".into())
            }
            (other, _) => {
                return Err(format!(
                    "--smtp-url must start with smtp:// or smtps://, not {other}://"
                ))
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(15)));
        if !url.username().is_empty() {
            let decode = |s: &str| percent_decode(s);
            builder = builder.credentials(Credentials::new(
                decode(url.username()),
                decode(url.password().unwrap_or_default()),
            ));
        }
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("--email-from {:?} is not an address: {e}", config.from))?;
        Ok(Smtp {
            transport: builder.build(),
            from,
        })
    }

    pub async fn send(&self, notice: &Notice<'_>) -> SendOutcome {
        let message = match self.message(notice) {
            Ok(message) => message,
            Err(error) => return SendOutcome::Refused { error },
        };
        match self.transport.send(message).await {
            Ok(response) => SendOutcome::Delivered {
                via: "smtp",
                reference: response.message().next().map(str::to_owned),
            },
            Err(e) if e.is_permanent() => SendOutcome::Refused {
                error: format!("the mail server refused the message: {e}"),
            },
            Err(e) => SendOutcome::RetryLater {
                error: format!("could not hand the message to the mail server: {e}"),
                after: None,
            },
        }
    }

    fn message(&self, notice: &Notice<'_>) -> Result<Message, String> {
        let pause = notice.pause;
        let to = pause
            .recipient
            .parse::<Mailbox>()
            .map_err(|e| format!("{:?} is not an address: {e}", pause.recipient))?;
        let html = views::email(pause, notice.project, &notice.link, notice.now).into_string();
        Message::builder()
            .message_id(None)
            .from(self.from.clone())
            .to(to)
            .subject(subject(&pause.message))
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(text(notice)),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html),
                    ),
            )
            .map_err(|e| format!("could not build the email: {e}"))
    }
}

/// "Decision needed: " and the message's first line, cut to fit a subject line.
pub fn subject(message: &str) -> String {
    let first = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut subject: String = first.chars().take(80).collect();
    if first.chars().count() > 80 {
        subject.push('…');
    }
    format!("Decision needed: {subject}")
}

/// The plain-text part: the question, a link per option, and the page link.
fn text(notice: &Notice<'_>) -> String {
    let pause = notice.pause;
    let mut text = match projects::shown_name(notice.project) {
        Some(project) => format!("{project} asks:\n\n{}\n\n", pause.message),
        None => format!("Decision needed:\n\n{}\n\n", pause.message),
    };
    for option in &pause.options {
        text.push_str(&format!(
            "{option}: {}\n",
            views::choice_link(&notice.link, option)
        ));
    }
    text.push_str(&format!(
        "\n{} left: answer by {}. {}",
        views::human_duration(pause.expires_at.duration_since(notice.now)),
        views::clock(pause.expires_at),
        views::if_nobody_answers_text(pause)
    ));
    text.push_str(&format!("\nOr open: {}\n", notice.link));
    text
}

/// Plain SMTP sends the password and the links in the clear: only to this machine, or to
/// a private network when the operator allows it.
fn plain_allowed(url: &Url, allow_private_network: bool) -> Result<(), String> {
    use std::net::ToSocketAddrs;
    let host = url.host_str().unwrap_or_default();
    let port = url.port().unwrap_or(25);
    let addresses: Vec<std::net::IpAddr> = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|e| format!("--smtp-url: cannot resolve {host}: {e}"))?
        .map(|a| a.ip())
        .collect();
    let allowed = |ip: &std::net::IpAddr| {
        ip.is_loopback() || (allow_private_network && crate::outbound::is_internal(*ip))
    };
    if addresses.is_empty() || !addresses.iter().all(allowed) {
        return Err(format!(
            "--smtp-url asks for plain SMTP (tls=none) to {host}, which is not this machine{}; \
             use smtp:// with STARTTLS or smtps://",
            if allow_private_network {
                " or a private network"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
