//! Verifying a project's audit chain: every event in place, each hash recomputed from the
//! event and the hash before it, and the chain ending where the project's head said when
//! the walk began. Events appended while it walks are left for the next walk.

use pausepoint_api::audit::GENESIS_HASH;
use pausepoint_api::VerifyReport;

use crate::ids::ProjectId;
use crate::store::{Store, StoreError};

const PAGE: u32 = 1000;

/// Walks the whole chain of `project_id` and reports the first event out of place.
pub async fn verify(store: &Store, project_id: ProjectId) -> Result<VerifyReport, StoreError> {
    let (head_seq, head_hash) = store.audit_head(project_id).await?;
    let mut checked: u64 = 0;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let bad = |seq: i64, checked: u64, prev_hash: &str, problem: String| VerifyReport {
        ok: false,
        events_checked: checked,
        head_hash: prev_hash.to_owned(),
        first_bad_seq: Some(seq),
        problem: Some(problem),
    };
    loop {
        let rows = store.audit_rows(project_id, expected_seq - 1, PAGE).await?;
        let last_page = rows.len() < PAGE as usize;
        let mut reached_head = false;
        for row in rows {
            let seq = match &row {
                Ok(event) => event.seq,
                Err((seq, _)) => *seq,
            };
            if seq > head_seq && expected_seq > head_seq {
                // Written after the walk began: not part of what this walk checks.
                reached_head = true;
                break;
            }
            let event = match row {
                Ok(event) => event,
                // A row whose fields no longer parse was edited behind the server's back.
                Err((seq, detail)) => {
                    return Ok(bad(
                        seq,
                        checked,
                        &prev_hash,
                        format!("unreadable event: {detail}"),
                    ))
                }
            };
            if event.seq != expected_seq {
                return Ok(bad(
                    expected_seq,
                    checked,
                    &prev_hash,
                    format!("event {expected_seq} is missing (next is {})", event.seq),
                ));
            }
            if event.prev_hash != prev_hash {
                return Ok(bad(
                    event.seq,
                    checked,
                    &prev_hash,
                    "prev_hash does not match the event before".into(),
                ));
            }
            let holds = event.hash_holds(&prev_hash).map_err(|e| {
                StoreError::corrupt(
                    "audit_events",
                    format!("cannot hash event {}: {e}", event.seq),
                )
            })?;
            if !holds {
                return Ok(bad(
                    event.seq,
                    checked,
                    &prev_hash,
                    "the event was changed after it was written".into(),
                ));
            }
            prev_hash = event.hash;
            expected_seq += 1;
            checked += 1;
        }
        if last_page || reached_head {
            break;
        }
    }
    let last_seq = expected_seq - 1;
    if last_seq != head_seq || prev_hash != head_hash {
        return Ok(bad(
            expected_seq,
            checked,
            &prev_hash,
            format!("the log ends at event {last_seq} but {head_seq} were written"),
        ));
    }
    Ok(VerifyReport {
        ok: true,
        events_checked: checked,
        head_hash: prev_hash,
        first_bad_seq: None,
        problem: None,
    })
}
