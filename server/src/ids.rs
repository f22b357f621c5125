//! The ids of the service's things, each its own type, so that a pause id cannot be passed
//! where a project id belongs. All are UUIDs (v7, time-ordered) on the wire and in the
//! database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The counter that orders the ids made from a given time within one millisecond.
/// A time earlier than one already used takes the later one (a clock that steps back
/// does not reorder ids); list filters by time allow a margin for that.
static ORDERED: std::sync::Mutex<uuid::ContextV7> = std::sync::Mutex::new(uuid::ContextV7::new());

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> $name {
                $name(Uuid::now_v7())
            }

            /// A new id whose time is `at` (to the millisecond), as its row's creation
            /// time: lists filtered by time then search a range of ids. Ids made in one
            /// process only grow, even within a millisecond, so "newest first" lists
            /// the order things were made in.
            pub fn at(at: jiff::Timestamp) -> $name {
                let ms = at.as_millisecond().max(0).unsigned_abs();
                let timestamp = uuid::Timestamp::from_unix(
                    &ORDERED,
                    ms / 1000,
                    u32::try_from(ms % 1000).unwrap_or(0) * 1_000_000,
                );
                $name(Uuid::new_v7(timestamp))
            }

            /// The smallest id of time `at` or later, in the text form ids are stored in.
            pub fn lowest_at(at: jiff::Timestamp) -> String {
                let ms = at.as_millisecond().max(0).unsigned_abs() & 0xffff_ffff_ffff;
                let hex = format!("{ms:012x}");
                format!("{}-{}-0000-0000-000000000000", &hex[..8], &hex[8..])
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> $name {
                $name(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<$name, uuid::Error> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

id!(
    /// A pause request.
    PauseId
);
id!(
    /// A project: a tenant, with its keys, pauses and audit chain.
    ProjectId
);
id!(
    /// An API key (never the key itself).
    KeyId
);
id!(
    /// A remembered approval ("Allow for 1 hour").
    RuleId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_at_one_time_keep_the_order_they_were_made_in() {
        // Now, not a fixed time: the order is kept process-wide, and other tests make
        // ids of now too.
        let at = jiff::Timestamp::now();
        let ids: Vec<PauseId> = (0..1000).map(|_| PauseId::at(at)).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        // Each still carries its row's time, which the time filters search by.
        let later = at + jiff::SignedDuration::from_secs(60);
        assert!(ids[0].to_string() >= PauseId::lowest_at(at));
        assert!(ids[999].to_string() < PauseId::lowest_at(later));
        // A time before one already used does not make a smaller id.
        let earlier = PauseId::at(at - jiff::SignedDuration::from_secs(1));
        assert!(earlier > ids[999]);
    }
}
