//! Canonical JSON (RFC 8785, "JCS"): the one form of a value that every hash and
//! signature of PausePoint covers, so that anyone can recompute them from the JSON alone.
//!
//! - Object members are sorted by their names' UTF-16 code units; arrays keep their order.
//! - Strings are escaped as JSON must and no further (`"`, `\`, and the controls below
//!   U+0020, as `\b \t \n \f \r` or lowercase `\u00xx`), everything else as UTF-8.
//! - Every number is written as ECMAScript writes a double (`1`, `0.5`, `1e+21`), as
//!   `ryu-js` does: integers past 2^53 lose precision, as they do in JavaScript.
//! - No whitespace.
//!
//! Written in one pass over a [`Value`]. `serde_jcs`, which this replaces on the hot path
//! and which the tests keep as the reference, buffers every member of every object in a
//! map of its own and parses each member's name back from JSON to sort it: hashing audit
//! events with it was a tenth of a server's CPU under load.

use serde::Serialize;
use serde_json::Value;

/// `value` in canonical form.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_value(value, &mut out);
    out
}

/// `value` in canonical form, as text.
pub fn to_string(value: &Value) -> String {
    let bytes = to_vec(value);
    // Built only from `&str`s, ASCII punctuation and ASCII numbers.
    String::from_utf8(bytes).expect("canonical JSON is UTF-8")
}

/// Any serializable value in canonical form, through its JSON value. Fails where
/// serde_json cannot make a [`Value`] of it (a map with keys that are not strings).
/// A float that is not finite becomes `null`, as serde_json makes it; no type this crate
/// hashes has one.
pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    Ok(to_vec(&serde_json::to_value(value)?))
}

/// Appends `value` in canonical form to `out`.
pub fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            // Every JSON number serde_json holds is finite (integers convert exactly up to
            // 2^53, as in JavaScript).
            write_number(number.as_f64().unwrap_or(0.0), out)
        }
        Value::String(text) => write_str(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            // serde_json's map is already in byte order, which is UTF-16 order unless a
            // name holds characters past U+FFFF: the sort then has nothing to move.
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(name, out);
                out.push(b':');
                write_value(member, out);
            }
            out.push(b'}');
        }
    }
}

/// Appends `text` as a canonical JSON string. serde_json escapes exactly as RFC 8785 asks.
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}

/// Appends a finite `number` as ECMAScript writes it.
pub fn write_number(number: f64, out: &mut Vec<u8>) {
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format_finite(number).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The reference: `serde_jcs`, a separate implementation of the same RFC.
    fn reference(value: &Value) -> Vec<u8> {
        serde_jcs::to_vec(value).unwrap()
    }

    fn same_as_reference(value: &Value) {
        assert_eq!(
            String::from_utf8(to_vec(value)).unwrap(),
            String::from_utf8(reference(value)).unwrap(),
            "for {value}"
        );
    }

    #[test]
    fn matches_the_rfcs_own_example() {
        // RFC 8785, section 3.2.2 (with its numbers and its string of escapes).
        let input: Value = serde_json::from_str(
            r#"{
              "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }"#,
        )
        .unwrap();
        assert_eq!(
            to_string(&input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        same_as_reference(&input);
    }

    #[test]
    fn sorts_names_by_utf16_not_by_bytes() {
        // RFC 8785, section 3.2.3: U+1F600 (a surrogate pair) sorts before U+FB33 in UTF-16,
        // after it in UTF-8.
        let input = json!({"\u{20ac}": "Euro Sign", "\r": "Carriage Return", "\u{fb33}": "Hebrew Letter Dalet With Dagesh", "1": "One", "\u{1f600}": "Emoji: Grinning Face", "\u{0080}": "Control", "\u{00f6}": "Latin Small Letter O With Diaeresis"});
        let text = to_string(&input);
        let order = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ];
        let at: Vec<usize> = order.iter().map(|v| text.find(v).unwrap()).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        same_as_reference(&input);
    }

    #[test]
    fn numbers_are_written_as_javascript_writes_them() {
        for (input, expected) in [
            (json!(0), "0"),
            (json!(-0.0), "0"),
            (json!(1), "1"),
            (json!(-17), "-17"),
            (json!(1.0), "1"),
            (json!(0.1), "0.1"),
            (json!(1e21), "1e+21"),
            (json!(1e-7), "1e-7"),
            (json!(123456789012345680000.0), "123456789012345680000"),
            (json!(9007199254740993_u64), "9007199254740992"),
            (json!(i64::MIN), "-9223372036854776000"),
            (json!(u64::MAX), "18446744073709552000"),
        ] {
            assert_eq!(to_string(&input), expected, "for {input}");
            same_as_reference(&input);
        }
    }

    #[test]
    fn matches_the_reference_on_every_kind_of_value() {
        let values = [
            json!(null),
            json!("plain"),
            json!(""),
            json!("controls \u{0} \u{1} \u{8} \u{9} \u{a} \u{c} \u{d} \u{1f} \u{7f} end"),
            json!("quotes \" and \\ and / and </script> and \u{2028}\u{2029}"),
            json!("non-ASCII: caf\u{e9} \u{4e2d}\u{6587} \u{1f680}"),
            json!([]),
            json!({}),
            json!([[], {}, [{}], {"a": []}]),
            json!({"b": 1, "a": {"d": [3, {"z": null, "y": true}], "c": false}, "": 0}),
            json!({"message": "Wire $8,400 to Meridian?", "options": ["Approve", "Reject"],
                   "recipient": "+13128471928", "timeout_default": "Reject",
                   "metadata": {"amount": 8400.5, "ids": [1, 2, 3], "nested": {"\u{e9}": "x"}}}),
        ];
        for value in &values {
            same_as_reference(value);
        }
    }

    /// Many generated values, with names and strings drawn from an alphabet that holds
    /// the cases where implementations differ: controls, surrogate pairs, characters
    /// past U+E000, and floats of every magnitude.
    #[test]
    fn matches_the_reference_on_generated_values() {
        let alphabet = [
            "a",
            "B",
            "0",
            " ",
            "\"",
            "\\",
            "/",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "\u{80}",
            "\u{e9}",
            "\u{fb33}",
            "\u{ffff}",
            "\u{10000}",
            "\u{1f600}",
            "\n",
            "\u{2028}",
        ];
        // A small deterministic generator: the same values on every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        fn text(next: &mut impl FnMut() -> u64, alphabet: &[&str]) -> String {
            (0..next() % 6)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        }
        fn value(next: &mut impl FnMut() -> u64, alphabet: &[&str], depth: u32) -> Value {
            match next() % if depth > 3 { 5 } else { 7 } {
                0 => Value::Null,
                1 => Value::Bool(next().is_multiple_of(2)),
                2 => json!(next() as i64 >> (next() % 64)),
                3 => {
                    let float = f64::from_bits(next());
                    if float.is_finite() {
                        json!(float)
                    } else {
                        json!(next() as f64 / 7.0)
                    }
                }
                4 => Value::String(text(next, alphabet)),
                5 => Value::Array(
                    (0..next() % 4)
                        .map(|_| value(next, alphabet, depth + 1))
                        .collect(),
                ),
                _ => Value::Object(
                    (0..next() % 5)
                        .map(|_| (text(next, alphabet), value(next, alphabet, depth + 1)))
                        .collect(),
                ),
            }
        }
        for _ in 0..5_000 {
            same_as_reference(&value(&mut next, &alphabet, 0));
        }
    }

    #[test]
    fn serializable_values_go_through_their_json() {
        #[derive(Serialize)]
        struct Receipt<'a> {
            z: &'a str,
            a: u64,
            m: Option<i32>,
        }
        let receipt = Receipt {
            z: "last",
            a: 7,
            m: None,
        };
        assert_eq!(of(&receipt).unwrap(), br#"{"a":7,"m":null,"z":"last"}"#);
        assert_eq!(of(&receipt).unwrap(), serde_jcs::to_vec(&receipt).unwrap());
    }
}
