//! The ids of the service's things, each its own type, so that a pause id cannot be passed
//! where a project id belongs. All are UUIDs (v7, time-ordered) on the wire and in the
//! database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
            /// time: lists filtered by time then search a range of ids.
            pub fn at(at: jiff::Timestamp) -> $name {
                let ms = at.as_millisecond().max(0).unsigned_abs();
                let timestamp = uuid::Timestamp::from_unix(
                    uuid::NoContext,
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
