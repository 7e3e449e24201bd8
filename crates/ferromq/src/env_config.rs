//! Configuration keys from the environment: `FERROMQ_<KEY>` sets a `broker.conf`,
//! `namesrv.conf` or `controller.conf` key, for containers, where a variable is easier to
//! pass than a mounted file. A variable beats the file and loses to a command-line flag.
//!
//! The key may be spelt as Apache spells it (`FERROMQ_brokerIP1`) or in the environment's
//! usual upper case with underscores between words (`FERROMQ_BROKER_IP1`): case and
//! underscores are ignored when matching. Other `FERROMQ_` variables belong to other
//! programs (test harnesses use a few), so one that matches no key is ignored, with a
//! warning only when it is a near miss of a key: that is a typo worth reporting.

use std::collections::HashMap;

pub const PREFIX: &str = "FERROMQ_";

/// The flags that read a variable themselves (clap's `env`), which are not keys.
const FLAG_VARIABLES: &[&str] = &["FERROMQ_CONFIG", "FERROMQ_DATA_DIR"];

/// Keys and values set by the `FERROMQ_` variables among `vars`, for the keys in `known`,
/// and a warning per variable that looks like a misspelt key.
pub fn key_values<'k>(
    vars: impl IntoIterator<Item = (String, String)>,
    known: impl IntoIterator<Item = &'k str>,
) -> (HashMap<String, String>, Vec<String>) {
    let known: Vec<(&str, String)> = known.into_iter().map(|k| (k, folded(k))).collect();
    let mut values = HashMap::new();
    let mut warnings = Vec::new();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(PREFIX) && !FLAG_VARIABLES.contains(&name.as_str()))
        .collect();
    // Sorted, so that two spellings of one key resolve the same way every time.
    vars.sort();
    for (name, value) in vars {
        let wanted = folded(&name[PREFIX.len()..]);
        if let Some((key, _)) = known.iter().find(|(_, k)| *k == wanted) {
            if let Some(earlier) = values.insert(key.to_string(), value) {
                warnings.push(format!(
                    "{name} sets {key} again (it was already '{earlier}' from another spelling); the later one in sorted order wins"
                ));
            }
            continue;
        }
        // Short names (FERROMQ_BIN) are too close to too much to call anything a typo.
        if wanted.len() >= 5 {
            if let Some((key, _)) = known
                .iter()
                .filter(|(_, k)| strsim::levenshtein(k, &wanted) <= 2)
                .min_by_key(|(_, k)| strsim::levenshtein(k, &wanted))
            {
                warnings.push(format!(
                    "{name} matches no configuration key and is ignored; did you mean {key} ({})?",
                    variable_name(key)
                ));
            }
        }
    }
    (values, warnings)
}

/// The keys among `known` that this process's `FERROMQ_` variables set; warnings for
/// near misses are logged.
pub fn from_process<'k>(known: impl IntoIterator<Item = &'k str>) -> HashMap<String, String> {
    let (values, warnings) = key_values(std::env::vars(), known);
    for w in warnings {
        tracing::warn!("{w}");
    }
    values
}

/// The upper-case spelling of a key's variable: `brokerIP1` → `FERROMQ_BROKER_IP1`.
pub fn variable_name(key: &str) -> String {
    let mut out = String::from(PREFIX);
    let chars: Vec<char> = key.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        // A word starts at a capital after a lower-case letter or a digit; a run of
        // capitals stays one word (`brokerIP1` → BROKER_IP1).
        let starts_word = i > 0
            && c.is_ascii_uppercase()
            && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
        if starts_word {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Case and underscores do not count.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const KEYS: &[&str] = &["brokerIP1", "namesrvAddr", "flushDiskType", "listenPort"];

    #[test]
    fn both_spellings_of_a_key_are_read_and_unrelated_variables_are_left_alone() {
        let (values, warnings) = key_values(
            vars(&[
                ("FERROMQ_BROKER_IP1", "10.0.0.7"),
                ("FERROMQ_namesrvAddr", "ns1:9876;ns2:9876"),
                ("FERROMQ_BIN", "/usr/bin/ferromq"),
                ("FERROMQ_CONFIG", "/etc/ferromq/broker.conf"),
                ("PATH", "/bin"),
                ("BROKER_IP1", "not ours"),
            ]),
            KEYS.iter().copied(),
        );
        assert_eq!(values.len(), 2, "{values:?}");
        assert_eq!(values["brokerIP1"], "10.0.0.7");
        assert_eq!(values["namesrvAddr"], "ns1:9876;ns2:9876");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn a_near_miss_is_reported_with_the_key_it_resembles() {
        let (values, warnings) = key_values(
            vars(&[("FERROMQ_FLUSH_DISC_TYPE", "SYNC_FLUSH")]),
            KEYS.iter().copied(),
        );
        assert!(values.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("flushDiskType"), "{}", warnings[0]);
        assert!(
            warnings[0].contains("FERROMQ_FLUSH_DISK_TYPE"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn two_spellings_of_one_key_are_reported() {
        let (values, warnings) = key_values(
            vars(&[("FERROMQ_LISTEN_PORT", "1"), ("FERROMQ_listenPort", "2")]),
            KEYS.iter().copied(),
        );
        assert_eq!(values.len(), 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn variable_names_split_apache_keys_into_words() {
        assert_eq!(variable_name("brokerIP1"), "FERROMQ_BROKER_IP1");
        assert_eq!(
            variable_name("haMasterAddress"),
            "FERROMQ_HA_MASTER_ADDRESS"
        );
        assert_eq!(variable_name("listenPort"), "FERROMQ_LISTEN_PORT");
    }
}
