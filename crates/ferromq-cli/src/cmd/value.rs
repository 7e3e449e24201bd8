//! Apache's value formats on the command line: booleans as Java's `Boolean.parseBoolean`
//! reads them, attribute changes (`+key=value,-key`) and timestamps.

use std::collections::BTreeMap;
use std::convert::Infallible;

use anyhow::{bail, Result};

/// `true` in any case is true, anything else false: mqadmin's `-o true`, `-s false`.
pub fn java_bool(s: &str) -> Result<bool, Infallible> {
    Ok(s.trim().eq_ignore_ascii_case("true"))
}

/// `+key=value` adds or changes, `-key` removes; as Apache's `AttributeParser`.
pub fn attributes(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for kv in s.split(',').map(str::trim).filter(|kv| !kv.is_empty()) {
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) if k.starts_with('+') => (k, v),
            Some(_) => return Err(format!("'{kv}': an attribute with a value starts with '+'")),
            None if kv.starts_with('-') => (kv, ""),
            None => return Err(format!("'{kv}': an attribute to remove starts with '-'")),
        };
        if out.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("attribute {key} is given twice"));
        }
    }
    Ok(out)
}

/// The `+key=value,-key` form a topic request header carries.
pub fn attributes_text(attributes: &BTreeMap<String, String>) -> String {
    attributes
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Milliseconds since the epoch from `now`, milliseconds, or Apache's
/// `yyyy-MM-dd#HH:mm:ss:SSS` in the local time zone.
pub fn timestamp(s: &str) -> Result<i64> {
    let s = s.trim();
    if s == "now" {
        return Ok(now_ms());
    }
    if let Ok(ms) = s.parse() {
        return Ok(ms);
    }
    match local_datetime_ms(s) {
        Some(ms) => Ok(ms),
        None => bail!(
            "timestamp '{s}' is neither milliseconds, 'now' nor a local time yyyy-MM-dd#HH:mm:ss:SSS"
        ),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn local_datetime_ms(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('#')?;
    let (hms, millis) = time.rsplit_once(':')?;
    let digits = |part: &str, lens: &[usize], sep: char| {
        let fields: Vec<&str> = part.split(sep).collect();
        fields.len() == lens.len()
            && fields
                .iter()
                .zip(lens)
                .all(|(f, &n)| f.len() == n && f.bytes().all(|b| b.is_ascii_digit()))
    };
    if !digits(date, &[4, 2, 2], '-') || !digits(hms, &[2, 2, 2], ':') || !digits(millis, &[3], ':')
    {
        return None;
    }
    let seconds = local_seconds(&format!("{date} {hms}"))?;
    Some(seconds * 1000 + millis.parse::<i64>().ok()?)
}

/// Milliseconds since the epoch as local time (`TZ` honoured), as mqadmin prints times;
/// with the milliseconds when asked. Out-of-range values print as the number.
pub fn local_time(ms: i64, with_millis: bool) -> String {
    let format = if with_millis {
        "%Y-%m-%d %H:%M:%S%.3f"
    } else {
        "%Y-%m-%d %H:%M:%S"
    };
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime(format)
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// Local time to seconds since the epoch, with the system's time-zone rules (`TZ` honoured),
/// as Java reads mqadmin's timestamps.
fn local_seconds(local: &str) -> Option<i64> {
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", local).ok()?;
    let zoned = civil.to_zoned(jiff::tz::TimeZone::system()).ok()?;
    Some(zoned.timestamp().as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_as_java_does() {
        assert_eq!(java_bool("TRUE"), Ok(true));
        assert_eq!(java_bool("yes"), Ok(false));
    }

    #[test]
    fn attributes_need_a_sign_and_round_trip() {
        let a = attributes("+message.type=FIFO,-delete.me").unwrap();
        assert_eq!(attributes_text(&a), "+message.type=FIFO,-delete.me");
        assert!(attributes("message.type=FIFO").is_err());
        assert!(attributes("keep").is_err());
        assert!(attributes("+a=1,+a=2").is_err());
    }

    #[test]
    fn timestamps_in_apaches_forms() {
        assert_eq!(timestamp("1700000000000").unwrap(), 1_700_000_000_000);
        assert!((timestamp("now").unwrap() - now_ms()).abs() < 60_000);
        let local = timestamp("2023-11-14#22:13:20:123").unwrap();
        // Whatever the local zone, it is within a day of the UTC reading.
        assert!(
            (local - 1_700_000_000_123).abs() <= 26 * 3_600_000,
            "{local}"
        );
        assert_eq!(local % 1000, 123);
        assert!(timestamp("yesterday").is_err());
        assert!(timestamp("2023-11-14 22:13:20").is_err());
    }
}
