//! Detection of primary account numbers (card numbers) in free text and JSON.
//!
//! Tenure never accepts a raw card number: payment methods are gateway tokens. The API
//! refuses any request body in which something looks like a card number, before the body
//! is deserialized, stored or logged.
//!
//! # The rule
//!
//! Text is split into *digit groups*: maximal runs of decimal digits, ASCII or not
//! (full-width `４２４２`, Arabic-Indic, Devanagari and the other decimal digit sets).
//! Two neighbouring groups belong to the same *run* when only separators stand between
//! them: any amount of whitespace (spaces, tabs, newlines, non-breaking and full-width
//! spaces) and at most [`MAX_SEPARATOR_MARKS`] marks people put between digit groups
//! (dashes, dots, slashes, underscores, in their ASCII, typographic and full-width forms,
//! and invisible characters such as the zero-width space), so `4242 4242 4242 4242`,
//! `4242.4242.4242.4242` and `4242 /\n 4242 …` are one run. Anything else ends a run: a
//! letter, and punctuation that joins numbers of other kinds (`:` and `+` in times and
//! offsets, `,` in lists), so `2026-12-07T07:57:28.076018+00:00` holds no 13-digit run. A card number is found when any sequence of consecutive
//! groups of one run holds 13 to 19 digits in total and those digits pass the Luhn check.
//!
//! Only whole groups are combined: a single unbroken run of 16 digits is checked as
//! itself, not as its 13-, 14- or 15-digit substrings, so a random digit string that
//! fails the Luhn check is never reported (substrings would pass Luhn one time in ten).
//!
//! The rule has false positives by design (about one in ten 13–19 digit numbers passes
//! Luhn): a merchant's numeric `external_id` of 16 digits may be refused. That is the
//! price of never storing a card number; such ids can carry a prefix (`u-…`).

/// Fewest digits of a card number (ISO/IEC 7812).
pub const MIN_PAN_DIGITS: usize = 13;
/// Most digits of a card number (ISO/IEC 7812).
pub const MAX_PAN_DIGITS: usize = 19;
/// The most separator marks (dashes, dots, slashes, …; whitespace aside) that may stand
/// between two digit groups of one card number.
pub const MAX_SEPARATOR_MARKS: usize = 3;

/// The zero of every decimal digit set beyond ASCII that a person might type or paste:
/// each set is ten consecutive code points (Unicode guarantees it for category Nd).
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0,
    0x11730, 0x118E0, 0x16A60, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E950,
    0x1FBF0,
];

/// Whether `c` is a mark people put between the digit groups of a number they copy:
/// dashes, dots, slashes and underscores (ASCII, typographic, full-width), and the
/// invisible characters that ride along with pasted text.
fn is_separator_mark(c: char) -> bool {
    matches!(
        c,
        '-' | '.'
            | '/'
            | '_'
            | '\u{ad}'
            | '\u{b7}'
            | '\u{2010}'..='\u{2015}'
            | '\u{2022}'
            | '\u{2212}'
            | '\u{200b}'..='\u{200d}'
            | '\u{2060}'
            | '\u{feff}'
            | '\u{ff0d}'
            | '\u{ff0e}'
            | '\u{ff0f}'
            | '\u{ff3f}'
    )
}

/// The value of a decimal digit of any script, as an ASCII digit.
fn decimal_digit(c: char) -> Option<u8> {
    if c.is_ascii_digit() {
        return Some(c as u8);
    }
    let code = u32::from(c);
    DIGIT_ZEROS
        .iter()
        .find_map(|zero| code.checked_sub(*zero).filter(|value| *value < 10))
        .and_then(|value| u8::try_from(value).ok())
        .map(|value| b'0' + value)
}

/// The Luhn (mod 10) check over ASCII digits. Empty input fails.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if !i.is_multiple_of(2) {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether `text` contains something that looks like a card number (see the module
/// documentation for the rule).
pub fn contains_pan(text: &str) -> bool {
    let mut run: Vec<Vec<u8>> = Vec::new();
    let mut group: Vec<u8> = Vec::new();
    // Separator characters other than whitespace since the last group ended.
    let mut marks = 0;
    for c in text.chars() {
        if let Some(digit) = decimal_digit(c) {
            if group.is_empty() && marks > MAX_SEPARATOR_MARKS {
                if run_contains_pan(&run) {
                    return true;
                }
                run.clear();
            }
            group.push(digit);
            continue;
        }
        if !group.is_empty() {
            run.push(std::mem::take(&mut group));
            marks = 0;
        }
        if c.is_whitespace() {
            continue;
        }
        if is_separator_mark(c) {
            marks += 1;
        } else {
            if run_contains_pan(&run) {
                return true;
            }
            run.clear();
        }
    }
    if !group.is_empty() {
        run.push(group);
    }
    run_contains_pan(&run)
}

/// Whether a JSON value holds a card number in any string, number or object key, at any
/// depth.
pub fn json_contains_pan(value: &serde_json::Value) -> bool {
    find_pan_in_json(value).is_some()
}

/// Where in a JSON value the first card number is, as a dotted path (`metadata.card`,
/// `items[2].note`); `""` for the value itself.
///
/// When the card number is in an object *key*, the path names the object that holds
/// the key, never the key itself, so that the path can be shown to the caller without
/// echoing the number.
pub fn find_pan_in_json(value: &serde_json::Value) -> Option<String> {
    let mut path = Vec::new();
    if find(value, &mut path) {
        Some(render_path(&path))
    } else {
        None
    }
}

enum Segment {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

fn find(value: &serde_json::Value, path: &mut Vec<Segment>) -> bool {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) => false,
        Value::Number(n) => contains_pan(&n.to_string()),
        Value::String(s) => contains_pan(s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Segment::Index(i));
                if find(item, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        Value::Object(map) => {
            for (key, item) in map {
                // A number in a key is reported at the object, so the key is not echoed.
                if contains_pan(key) {
                    return true;
                }
                path.push(Segment::Key(key.clone()));
                if find(item, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
    }
}

/// Checks every sequence of consecutive groups whose digit count is 13–19.
fn run_contains_pan(groups: &[Vec<u8>]) -> bool {
    let mut digits = Vec::with_capacity(MAX_PAN_DIGITS);
    for first in 0..groups.len() {
        digits.clear();
        for group in &groups[first..] {
            digits.extend_from_slice(group);
            if digits.len() > MAX_PAN_DIGITS {
                break;
            }
            if digits.len() >= MIN_PAN_DIGITS && luhn_valid(&digits) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const VISA: &str = "4242424242424242";

    #[test]
    fn luhn_known_values() {
        assert!(luhn_valid(b"4242424242424242"));
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"4242424242424241"));
        assert!(!luhn_valid(b""));
        assert!(!luhn_valid(b"4242a"));
    }

    #[test]
    fn finds_card_numbers_in_text() {
        for text in [
            VISA,
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "card: 4242 - 4242 - 4242 - 4242 thanks",
            "my card is 378282246310005",
            "5555555555554444!",
            "x4242424242424242y",
            "order 12 4242424242424242",
            "6011111111111117 exp 12/30",
            "4242    4242    4242    4242 4242", // runs of spaces are still one number
        ] {
            assert!(contains_pan(text), "{text}");
        }
    }

    /// Whatever stands between the digits, short of a letter, the number is found: the
    /// separators outside testers wrote, and digits of other scripts.
    #[test]
    fn finds_card_numbers_whatever_separates_their_digits() {
        for separator in [
            ".", "/", "_", "\u{a0}", "\t", "\n", "\r\n", "     ", " . ", "\u{3000}", "\u{200b}",
            " / ", "-_-", "\u{2013}", "\u{ff0d}",
        ] {
            let text = format!("card {} exp 12/34", ["4242"; 4].join(separator));
            assert!(contains_pan(&text), "{text:?}");
        }
        for text in [
            "４２４２４２４２４２４２４２４２",
            "４２４２ ４２４２ ４２４２ ４２４２",
            "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢",
            "४२४२-४२४२-४२४२-४२४२",
            "4242 ４２４２ 4242 4242",
            "4\u{200b}2\u{200b}4\u{200b}2\u{200b}4242424242424242",
        ] {
            assert!(contains_pan(text), "{text:?}");
        }
        // A letter ends a number, and so do more than three marks in a row, and the
        // punctuation of times, offsets and lists.
        assert!(!contains_pan("4242 4242 x 4242 4242"));
        assert!(!contains_pan("4242 4242 ---- 4242 4242"));
        assert!(!contains_pan("4242 4242:4242 4242"));
        assert!(!contains_pan("4242,4242,4242,4242"));
    }

    #[test]
    fn ignores_ordinary_numbers() {
        for text in [
            "",
            "4242",
            "4242424242424241",
            "2026-11-25T10:00:00Z",
            "+49 30 1234567",
            "1999",
            "4242 4242 / then 4242 4242", // a word between halves
            "4242---- 4242 4242 4242",    // too many marks between groups
            "12345678901234567890123",    // 23 digits in one group: not a card number
            "cus_01jf9zb3f4e3a8r7m2k4t5n6bc",
            "0195e6d4-8f2a-7c3b-9d1e-4f5a6b7c8d9e",
            // Timestamps as chrono writes them, whatever their digits.
            "2027-01-07T07:57:28.076018+00:00",
            "2027-01-07 07:57:28.076018 +00:00",
            "12.50, 13.75, 9.99, 100.00",
        ] {
            assert!(!contains_pan(text), "{text}");
        }
    }

    #[test]
    fn finds_card_numbers_anywhere_in_json() {
        assert_eq!(
            find_pan_in_json(
                &json!({"name": "a", "metadata": {"note": format!("pay with {VISA}")}})
            ),
            Some("metadata.note".to_owned())
        );
        assert_eq!(
            find_pan_in_json(&json!({"items": [1, {"deep": [[4242424242424242u64]]}]})),
            Some("items[1].deep[0][0]".to_owned())
        );
        // In a key: the path names the enclosing object, not the key.
        assert_eq!(
            find_pan_in_json(&json!({"metadata": {VISA: true}})),
            Some("metadata".to_owned())
        );
        assert_eq!(find_pan_in_json(&json!(VISA)), Some(String::new()));
        assert_eq!(
            find_pan_in_json(&json!({"amount": 1999, "token": "pm_card_visa"})),
            None
        );
    }

    /// A Luhn-valid number: `body` followed by its check digit.
    fn with_check_digit(body: &[u8]) -> Vec<u8> {
        for check in b'0'..=b'9' {
            let mut candidate = body.to_vec();
            candidate.push(check);
            if luhn_valid(&candidate) {
                return candidate;
            }
        }
        unreachable!("one check digit always fits")
    }

    fn digits(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(b'0'..=b'9', len)
    }

    /// Splits digits into groups of 1..=6 joined by a separator.
    fn separated(digits: &[u8], cuts: &[usize], seps: &[&str]) -> String {
        let mut out = String::new();
        let mut at = 0;
        for (k, cut) in cuts.iter().enumerate() {
            let end = (at + cut).min(digits.len());
            if end <= at {
                break;
            }
            if !out.is_empty() {
                out.push_str(seps[k % seps.len()]);
            }
            out.push_str(std::str::from_utf8(&digits[at..end]).unwrap_or_default());
            at = end;
        }
        if at < digits.len() {
            if !out.is_empty() {
                out.push_str(seps[0]);
            }
            out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
        }
        out
    }

    proptest! {
        #[test]
        fn every_luhn_valid_number_is_found(
            body in digits(12..=18),
            cuts in prop::collection::vec(1usize..=6, 0..8),
            sep in prop::sample::select(vec![
                " ", "-", "  ", " - ", "--", ".", "/", "_", "\t", "\n", "\u{a0}", "      ",
            ]),
            prefix in "[a-z :]{0,8}",
            suffix in "[a-z .]{0,8}",
        ) {
            let number = with_check_digit(&body);
            let plain = String::from_utf8(number.clone()).unwrap_or_default();
            prop_assert!(contains_pan(&plain));
            let embedded = format!("{prefix}{plain}{suffix}");
            prop_assert!(contains_pan(&embedded), "{}", embedded);
            let spaced = separated(&number, &cuts, &[sep]);
            prop_assert!(contains_pan(&spaced), "{}", spaced);
            let nested = serde_json::json!({"a": [{"b": spaced}]});
            prop_assert!(json_contains_pan(&nested));
        }

        #[test]
        fn non_luhn_digit_strings_are_not_found(number in digits(13..=19)) {
            prop_assume!(!luhn_valid(&number));
            let text = String::from_utf8(number).unwrap_or_default();
            prop_assert!(!contains_pan(&text), "{}", text);
            let embedded = format!("id {text} end");
            prop_assert!(!contains_pan(&embedded), "{}", embedded);
        }

        /// Timestamps in every form the API writes or reads back are never card numbers,
        /// whatever their digits (a `cancel_at` was once refused one time in ten).
        #[test]
        fn timestamps_are_never_card_numbers(micros in 0i64..4_102_444_800_000_000) {
            use chrono::{DateTime, SecondsFormat};
            let at = DateTime::from_timestamp_micros(micros).unwrap_or_default();
            for text in [
                at.to_rfc3339(),
                at.to_rfc3339_opts(SecondsFormat::Micros, true),
                at.to_rfc3339_opts(SecondsFormat::Nanos, false),
                at.to_string(),
                at.naive_utc().to_string(),
            ] {
                prop_assert!(!contains_pan(&text), "{}", text);
            }
        }

        #[test]
        fn short_digit_strings_are_never_found(number in digits(1..=12)) {
            let text = String::from_utf8(number).unwrap_or_default();
            prop_assert!(!contains_pan(&text));
        }
    }
}
