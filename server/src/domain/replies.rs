//! Answers by SMS reply. Each SMS lists the options by number ("Reply 1 Approve, 2
//! Reject"); a reply of "1", "approve" or "Approve" from an approver's number is their
//! vote on the question open to that number. When a number has several questions open,
//! their texts carry a short reference to put first ("K7 1"). The reference is derived
//! from the pause and the approver, so nothing is stored for it, and it names nothing
//! by itself: a reply counts only from the approver's own number, as Twilio signs it.

use pausepoint_api::validation::Recipient;
use pausepoint_api::{text, Channel, Pause, PauseStatus};
use sha2::{Digest, Sha256};

use crate::domain::pauses::{now, PauseError, Pauses};
use crate::ids::PauseId;
use crate::store::approvers::OpenQuestion;
use crate::store::Store;

/// Letters and digits no one misreads: no I, O, 0 or 1.
const REFERENCE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Questions named in a reply that asks for a reference.
const LISTED: usize = 5;
/// The most open questions of one number a reply is matched against (newest first).
const MATCHED: u32 = 100;

/// The two-character reference of an approver's question.
pub fn reference(pause_id: PauseId, approver: u32) -> String {
    let digest = Sha256::new()
        .chain_update(pause_id.as_uuid().as_bytes())
        .chain_update(approver.to_be_bytes())
        .finalize();
    digest[..2]
        .iter()
        .map(|b| char::from(REFERENCE_ALPHABET[usize::from(*b) % REFERENCE_ALPHABET.len()]))
        .collect()
}

/// "Reply 1 Approve, 2 Reject", or with a reference "Reply K7 1 Approve, K7 2 Reject".
pub fn reply_options(options: &[String], reference: Option<&str>) -> String {
    let prefix = reference.map(|r| format!("{r} ")).unwrap_or_default();
    let listed: Vec<String> = options
        .iter()
        .enumerate()
        .map(|(i, option)| format!("{prefix}{} {option}", i + 1))
        .collect();
    format!("Reply {}", listed.join(", "))
}

/// The option a reply names: its number in the list, or its text in any case.
pub fn option_for<'o>(options: &'o [String], answer: &str) -> Option<&'o String> {
    let answer = answer
        .trim()
        .trim_end_matches(['.', '!', ' '])
        .trim_start_matches('#');
    if let Ok(n) = answer.parse::<usize>() {
        return n.checked_sub(1).and_then(|i| options.get(i));
    }
    let wanted = text::normalize(answer).to_lowercase();
    options
        .iter()
        .find(|option| text::normalize(option).to_lowercase() == wanted)
}

/// A reply's first word when it could be a reference, and the words after it.
fn split_reference(reply: &str) -> Option<(String, &str)> {
    let reply = reply.trim();
    let (first, rest) = reply.split_once(char::is_whitespace)?;
    let reference = first.to_uppercase();
    let looks = reference.len() == 2 && reference.bytes().all(|b| REFERENCE_ALPHABET.contains(&b));
    (looks && !rest.trim().is_empty()).then(|| (reference, rest.trim()))
}

/// Answers SMS replies.
#[derive(Clone)]
pub struct Replies {
    store: Store,
    pauses: Pauses,
}

impl Replies {
    pub fn new(store: Store, pauses: Pauses) -> Replies {
        Replies { store, pauses }
    }

    /// The questions open now to `number`, newest first, up to [`MATCHED`].
    pub async fn open_to(&self, number: &str) -> Result<Vec<OpenQuestion>, PauseError> {
        let number = number.to_owned();
        let now = now();
        Ok(self
            .store
            .read(move |conn| {
                Box::pin(async move { conn.open_sms_questions(&number, now, MATCHED).await })
            })
            .await?)
    }

    /// Takes the reply `text` from the phone number `from` and returns what to text back.
    pub async fn answer(&self, from: &str, reply: &str) -> Result<String, PauseError> {
        let Ok(Recipient::Sms(number)) = Recipient::parse(Channel::Sms, from) else {
            return Ok(NOTHING_OPEN.into());
        };
        let open = self.open_to(&number).await?;
        let named = split_reference(reply).and_then(|(given, rest)| {
            let matching: Vec<&OpenQuestion> = open
                .iter()
                .filter(|q| reference(q.pause_id, q.approver) == given)
                .collect();
            (matching.len() == 1).then(|| (*matching[0], rest))
        });
        let (question, answer, several) = match (named, open.as_slice()) {
            (_, []) => return self.too_late(&number).await,
            (Some((question, rest)), _) => (question, rest, open.len() > 1),
            (None, [only]) => (*only, reply, false),
            (None, _) => return self.which_one(&open).await,
        };
        let pause = self
            .pauses
            .get(question.project_id, question.pause_id)
            .await?;
        let shown_reference = several.then(|| reference(question.pause_id, question.approver));
        let Some(choice) = option_for(&pause.options, answer) else {
            return Ok(format!(
                "{}.",
                reply_options(&pause.options, shown_reference.as_deref())
            ));
        };
        let voted = self
            .pauses
            .vote(
                question.project_id,
                question.pause_id,
                question.approver,
                choice,
                None,
            )
            .await;
        match voted {
            Ok(after) => Ok(recorded(&after, choice)),
            Err(PauseError::AlreadyVoted) => Ok("You already answered this question.".into()),
            Err(PauseError::NotPending(_) | PauseError::Expired) => {
                let current = self
                    .pauses
                    .get(question.project_id, question.pause_id)
                    .await?;
                Ok(outcome(&current))
            }
            Err(e) => Err(e),
        }
    }

    /// No question is open to `number`: what became of the last one it was asked, if any.
    async fn too_late(&self, number: &str) -> Result<String, PauseError> {
        let number = number.to_owned();
        let now = now();
        let last = self
            .store
            .read(move |conn| Box::pin(async move { conn.last_sms_question(&number, now).await }))
            .await?;
        let Some(last) = last else {
            return Ok(NOTHING_OPEN.into());
        };
        let pause = self.pauses.get(last.project_id, last.pause_id).await?;
        let answered = pause
            .approvers
            .get(last.approver as usize)
            .is_some_and(|a| a.vote.is_some());
        Ok(if pause.status.is_final() || pause.expires_at <= now {
            outcome(&pause)
        } else if answered {
            "You already answered this question.".into()
        } else {
            NOTHING_OPEN.into()
        })
    }

    /// Several questions are open and the reply names none of them.
    async fn which_one(&self, open: &[OpenQuestion]) -> Result<String, PauseError> {
        let mut listed = Vec::new();
        for question in open.iter().take(LISTED) {
            let pause = self
                .pauses
                .get(question.project_id, question.pause_id)
                .await?;
            let mut message: String = pause.message.chars().take(30).collect();
            if pause.message.chars().count() > 30 {
                message.push('…');
            }
            listed.push(format!(
                "{} for \"{message}\"",
                reference(question.pause_id, question.approver)
            ));
        }
        Ok(format!(
            "You have {} open questions. Start your reply with the question's reference, such as {} 1: {}.",
            open.len(),
            reference(open[0].pause_id, open[0].approver),
            listed.join("; ")
        ))
    }
}

const NOTHING_OPEN: &str = "There is no open question for this number to answer. Thank you.";

/// "Recorded: Approve", with the count while the pause waits for more votes.
fn recorded(after: &Pause, choice: &str) -> String {
    match (&after.quorum, after.status) {
        (Some(quorum), PauseStatus::Pending) => {
            let approvals = after
                .approvers
                .iter()
                .filter(|a| a.vote.as_ref().is_some_and(|v| v.choice == quorum.option))
                .count();
            format!(
                "Recorded: {choice}. {approvals} of {} approvals so far.",
                quorum.count
            )
        }
        _ => format!("Recorded: {choice}."),
    }
}

/// What became of a question answered too late.
fn outcome(pause: &Pause) -> String {
    match pause.status {
        PauseStatus::Responded => format!(
            "That question was already answered: {}.",
            pause.response_choice.as_deref().unwrap_or("")
        ),
        PauseStatus::Cancelled => "That question was withdrawn.".into(),
        PauseStatus::TimedOut | PauseStatus::Pending => "That question has timed out.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Vec<String> {
        vec!["Approve".into(), "Reject".into(), "Ask me tomorrow".into()]
    }

    #[test]
    fn a_reply_names_an_option_by_number_or_by_text() {
        let options = options();
        for (reply, chosen) in [
            ("1", Some("Approve")),
            (" 2 ", Some("Reject")),
            ("approve", Some("Approve")),
            ("APPROVE!", Some("Approve")),
            ("ask me TOMORROW", Some("Ask me tomorrow")),
            ("#3", Some("Ask me tomorrow")),
            ("4", None),
            ("0", None),
            ("maybe", None),
        ] {
            assert_eq!(
                option_for(&options, reply).map(String::as_str),
                chosen,
                "{reply}"
            );
        }
    }

    #[test]
    fn references_are_two_unmistakable_characters_and_split_off_a_reply() {
        let id = PauseId::new();
        let reference = reference(id, 0);
        assert_eq!(reference.len(), 2);
        assert!(reference.bytes().all(|b| REFERENCE_ALPHABET.contains(&b)));
        assert_eq!(super::reference(id, 0), reference, "stable");
        assert_eq!(
            split_reference("k7 1"),
            Some(("K7".to_owned(), "1")),
            "any case"
        );
        assert_eq!(
            split_reference("K7"),
            None,
            "a reference alone is no answer"
        );
        assert_eq!(split_reference("Approve"), None);
        assert_eq!(split_reference("I0 1"), None, "not in the alphabet");
        assert_eq!(
            reply_options(&options()[..2], Some("K7")),
            "Reply K7 1 Approve, K7 2 Reject"
        );
        assert_eq!(
            reply_options(&options()[..2], None),
            "Reply 1 Approve, 2 Reject"
        );
    }
}
