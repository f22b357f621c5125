//! Times on the wire: RFC 3339 in UTC with exactly three fractional digits
//! (`2026-11-23T12:00:31.590Z`), so that every time has one spelling, and times compared
//! as strings sort as times. Reading accepts any RFC 3339 time.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serializer};

/// `at` as the API writes it.
pub fn format(at: &Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `#[serde(with = "crate::time::millis")]` for a [`Timestamp`].
pub mod millis {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        Timestamp::deserialize(deserializer)
    }
}

/// `#[serde(with = "crate::time::millis_opt")]` for an `Option<Timestamp>`.
pub mod millis_opt {
    use super::*;

    pub fn serialize<S: Serializer>(
        at: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => serializer.serialize_some(&format(at)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        Option::<Timestamp>::deserialize(deserializer)
    }
}

/// A length of time the way people say it: "45s", "10m", "2h05m", "3d4h".
pub fn short_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 86_400, s % 86_400 / 3600, s % 3600 / 60) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m:02}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_has_three_fractional_digits() {
        for (millis, written) in [
            (1_700_000_000_000, "2023-11-14T22:13:20.000Z"),
            (1_700_000_000_590, "2023-11-14T22:13:20.590Z"),
            (1_700_000_000_007, "2023-11-14T22:13:20.007Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
        ] {
            let at = Timestamp::from_millisecond(millis).unwrap();
            assert_eq!(format(&at), written);
            assert_eq!(written.parse::<Timestamp>().unwrap(), at);
        }
    }
}
