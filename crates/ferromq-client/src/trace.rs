//! Message traces as RocketMQ clients write them (Java `enableMsgTrace`, Go `WithTrace`):
//! records on the trace topic (`RMQ_SYS_TRACE_TOPIC` unless the client names another),
//! each `\x02`-terminated with `\x01`-separated fields, the message's KEYS naming every
//! traced message id. [`decode`] reads a trace message's body record by record: a record
//! it cannot read is skipped, not the whole body (Apache's decoder throws on the first).

use serde::Serialize;

/// The default trace topic.
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

const FIELD: char = '\u{1}';
const RECORD: char = '\u{2}';

/// One trace record. Numbers a client wrote badly read as 0; missing trailing fields (older
/// clients write fewer) read as empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum TraceRecord {
    /// A send, as its producer saw it.
    Pub {
        timestamp: i64,
        region: String,
        group: String,
        topic: String,
        msg_id: String,
        tags: String,
        keys: String,
        store_host: String,
        body_length: i64,
        cost_ms: i64,
        /// Apache's `MessageType` ordinal: 0 normal, 1 transaction half, 2 commit, 3 delay, 4 ordered.
        msg_type: i64,
        offset_msg_id: String,
        success: bool,
    },
    /// A consumer starting on the message.
    SubBefore {
        timestamp: i64,
        region: String,
        group: String,
        request_id: String,
        msg_id: String,
        retry_times: i64,
        keys: String,
    },
    /// A consumer done with it.
    SubAfter {
        request_id: String,
        msg_id: String,
        cost_ms: i64,
        success: bool,
        keys: String,
        /// `ConsumeReturnType` ordinal: 0 success, 1 time out, 2 exception, 3 null, 4 failed.
        context_code: i64,
        /// Absent (0) from cloud-channel clients.
        timestamp: i64,
        group: String,
    },
    /// A transaction's end, by its producer or on the broker's check-back.
    EndTransaction {
        timestamp: i64,
        region: String,
        group: String,
        topic: String,
        msg_id: String,
        tags: String,
        keys: String,
        store_host: String,
        transaction_id: String,
        transaction_state: String,
        from_transaction_check: bool,
    },
}

impl TraceRecord {
    /// The traced message's id (its `UNIQ_KEY`).
    pub fn msg_id(&self) -> &str {
        match self {
            TraceRecord::Pub { msg_id, .. }
            | TraceRecord::SubBefore { msg_id, .. }
            | TraceRecord::SubAfter { msg_id, .. }
            | TraceRecord::EndTransaction { msg_id, .. } => msg_id,
        }
    }
}

/// The records of a trace message's body; unreadable ones are left out.
pub fn decode(body: &str) -> Vec<TraceRecord> {
    body.split(RECORD)
        .filter_map(|r| record(r.trim_start_matches(['\r', '\n'])))
        .collect()
}

fn record(text: &str) -> Option<TraceRecord> {
    let f: Vec<&str> = text.split(FIELD).collect();
    let s = |i: usize| f.get(i).copied().unwrap_or("").to_string();
    let n = |i: usize| {
        f.get(i)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    let b = |i: usize| f.get(i).copied() == Some("true");
    Some(match *f.first()? {
        "Pub" if f.len() >= 12 => TraceRecord::Pub {
            timestamp: n(1),
            region: s(2),
            group: s(3),
            topic: s(4),
            msg_id: s(5),
            tags: s(6),
            keys: s(7),
            store_host: s(8),
            body_length: n(9),
            cost_ms: n(10),
            msg_type: n(11),
            offset_msg_id: s(12),
            // Clients before 4.4 wrote no success flag: they traced successful sends only.
            success: f.len() < 14 || b(13),
        },
        "SubBefore" if f.len() >= 7 => TraceRecord::SubBefore {
            timestamp: n(1),
            region: s(2),
            group: s(3),
            request_id: s(4),
            msg_id: s(5),
            retry_times: n(6),
            keys: s(7),
        },
        "SubAfter" if f.len() >= 5 => TraceRecord::SubAfter {
            request_id: s(1),
            msg_id: s(2),
            cost_ms: n(3),
            success: b(4),
            keys: s(5),
            context_code: n(6),
            timestamp: n(7),
            group: s(8),
        },
        "EndTransaction" if f.len() >= 12 => TraceRecord::EndTransaction {
            timestamp: n(1),
            region: s(2),
            group: s(3),
            topic: s(4),
            msg_id: s(5),
            tags: s(6),
            keys: s(7),
            store_host: s(8),
            transaction_id: s(10),
            transaction_state: s(11),
            from_transaction_check: b(12),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Java 5.3 client's encoding of a send and of one consumption (fields from
    /// Apache's TraceDataEncoder), with a Go v2.1.2 Pub (one more field, the local IP).
    #[test]
    fn java_and_go_records_decode_and_bad_ones_are_skipped() {
        let body = concat!(
            "Pub\u{1}1700000000000\u{1}DefaultRegion\u{1}ProducerGroupA\u{1}TopicTest\u{1}C0A8011E4A3C18B4AAC27A5F3B8E0000\u{1}TagA\u{1}OrderID188\u{1}192.168.1.10:10911\u{1}14\u{1}5\u{1}0\u{1}C0A8010A00002A9F0000000000001F40\u{1}true\u{2}",
            "SubBefore\u{1}1700000000100\u{1}DefaultRegion\u{1}ConsumerGroupA\u{1}REQ1\u{1}C0A8011E4A3C18B4AAC27A5F3B8E0000\u{1}0\u{1}OrderID188\u{2}",
            "SubAfter\u{1}REQ1\u{1}C0A8011E4A3C18B4AAC27A5F3B8E0000\u{1}3\u{1}true\u{1}OrderID188\u{1}0\u{1}1700000000103\u{1}ConsumerGroupA\u{2}",
            "Nonsense\u{1}x\u{2}",
            "Pub\u{1}1700000000200\u{1}DefaultRegion\u{1}go-group\u{1}T\u{1}ID2\u{1}\u{1}\u{1}127.0.0.1:10911\u{1}5\u{1}1\u{1}0\u{1}OFF2\u{1}true\u{1}10.0.0.9\u{2}",
        );
        let records = decode(body);
        assert_eq!(records.len(), 4, "{records:?}");
        assert!(
            matches!(&records[0], TraceRecord::Pub { group, cost_ms: 5, success: true, store_host, .. } if group == "ProducerGroupA" && store_host == "192.168.1.10:10911")
        );
        assert!(
            matches!(&records[1], TraceRecord::SubBefore { request_id, retry_times: 0, .. } if request_id == "REQ1")
        );
        assert!(
            matches!(&records[2], TraceRecord::SubAfter { cost_ms: 3, success: true, timestamp: 1700000000103, group, .. } if group == "ConsumerGroupA")
        );
        assert_eq!(records[3].msg_id(), "ID2");
        // a cloud-channel SubAfter (7 fields, no timestamp or group)
        let cloud = decode("SubAfter\u{1}R\u{1}ID\u{1}2\u{1}false\u{1}k\u{1}4\u{1}\u{2}");
        assert!(matches!(
            &cloud[0],
            TraceRecord::SubAfter {
                success: false,
                context_code: 4,
                timestamp: 0,
                ..
            }
        ));
    }
}
