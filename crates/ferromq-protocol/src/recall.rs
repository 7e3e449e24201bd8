//! Apache's recall handle (`RecallMessageHandle.HandleV1`, RocketMQ 5.3.1): what a timer
//! message's send returns so that it can be withdrawn before it is due. URL-safe base64 of
//! `v1 topic brokerName dueMs uniqKey`.

use base64::Engine as _;

/// What a recall handle names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallHandle {
    pub topic: String,
    pub broker_name: String,
    pub due_ms: i64,
    pub uniq_key: String,
}

impl RecallHandle {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(format!(
            "v1 {} {} {} {}",
            self.topic, self.broker_name, self.due_ms, self.uniq_key
        ))
    }

    /// # Errors
    /// Apache's ILLEGAL_OPERATION remarks: not a handle, or a bad time in it.
    pub fn parse(handle: &str) -> Result<Self, &'static str> {
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(handle.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("recall handle is invalid")?;
        let f: Vec<&str> = raw.split(' ').collect();
        if f.len() < 5 || f[0] != "v1" {
            return Err("recall handle is invalid");
        }
        let due_ms = f[3]
            .parse()
            .map_err(|_| "recall failed, timestamp invalid")?;
        Ok(RecallHandle {
            topic: f[1].to_string(),
            broker_name: f[2].to_string(),
            due_ms,
            uniq_key: f[4].to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_reads_back_and_garbage_is_refused() {
        let h = RecallHandle {
            topic: "T".into(),
            broker_name: "broker-a".into(),
            due_ms: 1_700_000_000_000,
            uniq_key: "7F00000100002A9F0000000000000001".into(),
        };
        assert_eq!(RecallHandle::parse(&h.encode()), Ok(h));
        assert_eq!(
            RecallHandle::parse("not base64!"),
            Err("recall handle is invalid")
        );
        let bad_time = base64::engine::general_purpose::URL_SAFE.encode("v1 T b soon K");
        assert_eq!(
            RecallHandle::parse(&bad_time),
            Err("recall failed, timestamp invalid")
        );
    }
}
