//! Response timestamps written straight into the JSON, as chrono writes them.
//!
//! chrono serialises a `DateTime` through `Display`, which serde_json receives one
//! character at a time, escaping each: on a page of invoices that was a tenth of the
//! server's CPU. These format into a small buffer and hand serde_json one string. The
//! text is chrono's exactly (the tests compare the two); what this does not cover
//! (a year outside 0–9999, a leap second) is left to chrono.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `#[serde(serialize_with = "timestamps::rfc3339")]`
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match format(t, &mut buf).and_then(|len| std::str::from_utf8(&buf[..len]).ok()) {
        Some(text) => serializer.serialize_str(text),
        None => t.serialize(serializer),
    }
}

/// [`rfc3339`] for an optional timestamp (`null` when absent).
pub fn rfc3339_opt<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, serializer),
        None => serializer.serialize_none(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z`, the fraction as short as it can be
/// in steps of three digits; the length written, or `None` for what chrono should write.
fn format(t: &DateTime<Utc>, buf: &mut [u8; 30]) -> Option<usize> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    let fraction = if nanos == 0 {
        None
    } else if nanos.is_multiple_of(1_000_000) {
        Some((nanos / 1_000_000, 3))
    } else if nanos.is_multiple_of(1_000) {
        Some((nanos / 1_000, 6))
    } else {
        Some((nanos, 9))
    };
    let mut at = 0;
    // `width` decimal digits of `value`, then `after`.
    let mut put = |value: u32, width: u32, after: u8| {
        for i in (0..width).rev() {
            buf[at] = b'0' + u8::try_from(value / 10u32.pow(i) % 10).unwrap_or(0);
            at += 1;
        }
        buf[at] = after;
        at += 1;
    };
    put(year, 4, b'-');
    put(t.month(), 2, b'-');
    put(t.day(), 2, b'T');
    put(t.hour(), 2, b':');
    put(t.minute(), 2, b':');
    match fraction {
        None => put(t.second(), 2, b'Z'),
        Some((value, width)) => {
            put(t.second(), 2, b'.');
            put(value, width, b'Z');
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Ours(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);

    fn ours(t: DateTime<Utc>) -> String {
        serde_json::to_string(&Ours(t)).unwrap()
    }

    fn chronos(t: DateTime<Utc>) -> String {
        serde_json::to_string(&t).unwrap()
    }

    #[test]
    fn each_fraction_length_and_the_edges_match_chrono() {
        let base = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 1).unwrap();
        for nanos in [0, 1, 999, 1_000, 120_000, 123_456, 5_000_000, 999_999_999] {
            let t = base + chrono::Duration::nanoseconds(nanos);
            assert_eq!(ours(t), chronos(t));
        }
        for t in [
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
        ] {
            assert_eq!(ours(t), chronos(t));
        }
        assert_eq!(ours(base), r#""2026-11-25T10:00:01Z""#);
    }

    #[test]
    fn what_it_does_not_cover_is_chrono_s() {
        let far = Utc.with_ymd_and_hms(12_000, 1, 1, 0, 0, 0).unwrap();
        let before = Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap();
        let leap = Utc
            .with_ymd_and_hms(2016, 12, 31, 23, 59, 59)
            .unwrap()
            .with_nanosecond(1_500_000_000)
            .unwrap();
        for t in [far, before, leap] {
            assert_eq!(ours(t), chronos(t));
        }
    }

    proptest! {
        #[test]
        fn any_timestamp_reads_as_chrono_writes_it(
            secs in -62_167_219_200i64..253_402_300_800i64,
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1_000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..1_000_000_000,
            ],
        ) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(ours(t), chronos(t));
        }
    }
}
