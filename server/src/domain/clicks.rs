//! Answers given by a button inside Slack (the Slack app's messages). The button carries
//! the approver's link token and the option; the click, signed by Slack, votes as that
//! approver, with the Slack user who clicked as the actor. A question asked of a Slack
//! user is answered by that user only; one asked of a channel, by anyone in it.

use pausepoint_api::{Pause, PauseStatus};

use crate::channels::slack;
use crate::domain::links::Links;
use crate::domain::pauses::{now, PauseError, Pauses};
use crate::ids::PauseId;
use crate::store::{Actor, Store};

/// What became of a click, for the message to show.
#[derive(Debug, Clone)]
pub enum Clicked {
    /// The vote counted; the pause as it stands after it.
    Voted { pause: Box<Pause>, choice: String },
    /// The pause had already left pending.
    AlreadyDecided(Box<Pause>),
    /// This approver had answered already.
    AlreadyVoted,
    /// The user may not answer for this approver, or the button is not one of ours.
    Refused(&'static str),
}

/// Takes `user`'s click on a button whose value is `value`.
pub async fn click(
    store: &Store,
    links: &Links,
    pauses: &Pauses,
    user: &str,
    value: &str,
) -> Result<Clicked, PauseError> {
    let Some((token, index)) = slack::parse_value(value) else {
        return Ok(Clicked::Refused("not a PausePoint button"));
    };
    let Ok(target) = links.verify(token, now()) else {
        return Ok(Clicked::Refused("this question is closed"));
    };
    let Some((project_id, pause)) = store.pause_anywhere(target.pause_id).await? else {
        return Ok(Clicked::Refused("this question is closed"));
    };
    let Some(approver) = pause.approvers.get(target.approver as usize) else {
        return Ok(Clicked::Refused("this question is closed"));
    };
    // A user id names one person; a channel lets anyone in it answer.
    if matches!(approver.recipient.chars().next(), Some('U' | 'W')) && approver.recipient != user {
        return Ok(Clicked::Refused("this question was asked of someone else"));
    }
    let Some(choice) = pause.options.get(index).cloned() else {
        return Ok(Clicked::Refused("not one of the options"));
    };
    let id = PauseId::from(pause.pause_id);
    let voted = pauses
        .vote_as(
            project_id,
            id,
            target.approver,
            &choice,
            None,
            Some(Actor::Recipient(format!("slack:{user}"))),
        )
        .await;
    match voted {
        Ok(after) => Ok(Clicked::Voted {
            pause: Box::new(after),
            choice,
        }),
        Err(PauseError::AlreadyVoted) => Ok(Clicked::AlreadyVoted),
        Err(PauseError::NotPending(_) | PauseError::Expired) => {
            let current = pauses.get(project_id, id).await?;
            Ok(Clicked::AlreadyDecided(Box::new(current)))
        }
        Err(e) => Err(e),
    }
}

/// The line the message shows after a click, naming who clicked.
pub fn shown(clicked: &Clicked, user: &str) -> Option<String> {
    let decided = |pause: &Pause| match pause.status {
        PauseStatus::Responded => format!(
            "Decided: *{}*",
            slack::escape(pause.response_choice.as_deref().unwrap_or(""))
        ),
        PauseStatus::TimedOut => "Nobody answered in time.".to_owned(),
        PauseStatus::Cancelled => "The question was withdrawn.".to_owned(),
        PauseStatus::Pending => String::new(),
    };
    match clicked {
        Clicked::Voted { pause, choice } if pause.status == PauseStatus::Pending => {
            let progress = pause.quorum.as_ref().map(|quorum| {
                let approvals = pause
                    .approvers
                    .iter()
                    .filter(|a| a.vote.as_ref().is_some_and(|v| v.choice == quorum.option))
                    .count();
                format!(" · {approvals} of {} approvals", quorum.count)
            });
            Some(format!(
                "<@{user}> chose *{}*{}",
                slack::escape(choice),
                progress.unwrap_or_default()
            ))
        }
        Clicked::Voted { pause, .. } => Some(format!("{} by <@{user}>", decided(pause))),
        Clicked::AlreadyDecided(pause) => Some(decided(pause)),
        Clicked::AlreadyVoted | Clicked::Refused(_) => None,
    }
}
