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

/// A record with the address of the client that wrote it (its trace message's born host).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traced {
    #[serde(flatten)]
    pub record: TraceRecord,
    pub client_host: String,
}

/// The records about `msg_id` in trace messages found by key: a trace message counts only
/// when its KEYS name the id exactly (the index matches tokens, and clients put several ids
/// in one message), and only its records about that id are kept.
pub fn records_of(msg_id: &str, trace_messages: &[crate::MessageExt]) -> Vec<Traced> {
    let mut out = Vec::new();
    for m in trace_messages {
        let keys = m
            .property(ferromq_protocol::message::property::KEYS)
            .unwrap_or("");
        if !keys.split(' ').any(|k| k == msg_id) {
            continue;
        }
        let client_host = m.born_host.ip().to_string();
        for record in decode(&String::from_utf8_lossy(&m.body)) {
            if record.msg_id() == msg_id {
                out.push(Traced {
                    record,
                    client_host: client_host.clone(),
                });
            }
        }
    }
    out
}

/// A message's trace drawn as Apache's dashboard draws it: the send, the transaction's
/// ends, and per consumer group each consumption (a SubBefore paired with its SubAfter
/// by request id). Times are ms since the epoch; -1 where a record is missing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TraceGraph {
    pub producer: Option<SendNode>,
    pub transactions: Vec<TransactionNode>,
    pub consumers: Vec<GroupNodes>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendNode {
    pub group: String,
    pub topic: String,
    pub tags: String,
    pub keys: String,
    pub offset_msg_id: String,
    pub client_host: String,
    pub store_host: String,
    pub begin: i64,
    pub end: i64,
    pub cost_ms: i64,
    /// Apache's `MessageType` name (`Normal_Msg`, `Trans_Msg_Half`, `Delay_Msg`, …).
    pub msg_type: &'static str,
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransactionNode {
    pub timestamp: i64,
    pub state: String,
    pub from_check: bool,
    pub client_host: String,
    pub store_host: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupNodes {
    pub group: String,
    /// Newest first.
    pub consumptions: Vec<ConsumeNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumeNode {
    pub request_id: String,
    pub client_host: String,
    pub retry_times: i64,
    pub begin: i64,
    pub end: i64,
    pub cost_ms: i64,
    /// `success`, `failed`, or `unknown` while no SubAfter has been written (still consuming,
    /// or the client died).
    pub status: &'static str,
}

fn message_type_name(ordinal: i64) -> &'static str {
    match ordinal {
        0 => "Normal_Msg",
        1 => "Trans_Msg_Half",
        2 => "Trans_msg_Commit",
        3 => "Delay_Msg",
        4 => "Order_Msg",
        _ => "Unknown",
    }
}

/// Apache's words for a record's outcome.
pub fn status(success: bool) -> &'static str {
    if success {
        "success"
    } else {
        "failed"
    }
}

impl TraceGraph {
    pub fn build(records: &[Traced]) -> TraceGraph {
        let mut graph = TraceGraph::default();
        // (group, node) in the order consumptions first appear.
        let mut nodes: Vec<(String, ConsumeNode)> = Vec::new();
        let node_of = |nodes: &mut Vec<(String, ConsumeNode)>, request_id: &str, host: &str| {
            if let Some(i) = nodes.iter().position(|(_, n)| n.request_id == request_id) {
                return i;
            }
            nodes.push((
                String::new(),
                ConsumeNode {
                    request_id: request_id.to_string(),
                    client_host: host.to_string(),
                    retry_times: -1,
                    begin: -1,
                    end: -1,
                    cost_ms: -1,
                    status: "unknown",
                },
            ));
            nodes.len() - 1
        };
        for t in records {
            match &t.record {
                // A resent message has several Pubs; the last one is the send that counted.
                TraceRecord::Pub {
                    timestamp,
                    group,
                    topic,
                    tags,
                    keys,
                    store_host,
                    cost_ms,
                    msg_type,
                    offset_msg_id,
                    success,
                    ..
                } => {
                    graph.producer = Some(SendNode {
                        group: group.clone(),
                        topic: topic.clone(),
                        tags: tags.clone(),
                        keys: keys.clone(),
                        offset_msg_id: offset_msg_id.clone(),
                        client_host: t.client_host.clone(),
                        store_host: store_host.clone(),
                        begin: *timestamp,
                        end: timestamp + cost_ms,
                        cost_ms: *cost_ms,
                        msg_type: message_type_name(*msg_type),
                        status: status(*success),
                    })
                }
                TraceRecord::EndTransaction {
                    timestamp,
                    store_host,
                    transaction_state,
                    from_transaction_check,
                    ..
                } => graph.transactions.push(TransactionNode {
                    timestamp: *timestamp,
                    state: transaction_state.clone(),
                    from_check: *from_transaction_check,
                    client_host: t.client_host.clone(),
                    store_host: store_host.clone(),
                }),
                TraceRecord::SubBefore {
                    timestamp,
                    group,
                    request_id,
                    retry_times,
                    ..
                } => {
                    let i = node_of(&mut nodes, request_id, &t.client_host);
                    let (g, n) = &mut nodes[i];
                    *g = group.clone();
                    n.begin = *timestamp;
                    n.retry_times = *retry_times;
                    if n.cost_ms >= 0 && n.end < 0 {
                        n.end = n.begin + n.cost_ms;
                    }
                }
                TraceRecord::SubAfter {
                    request_id,
                    cost_ms,
                    success,
                    timestamp,
                    group,
                    ..
                } => {
                    let i = node_of(&mut nodes, request_id, &t.client_host);
                    let (g, n) = &mut nodes[i];
                    if g.is_empty() {
                        g.clone_from(group);
                    }
                    n.cost_ms = *cost_ms;
                    n.status = status(*success);
                    // Cloud-channel clients write no end time: begin + cost stands in.
                    n.end = if *timestamp > 0 {
                        *timestamp
                    } else if n.begin >= 0 {
                        n.begin + cost_ms
                    } else {
                        -1
                    };
                }
            }
        }
        graph
            .transactions
            .sort_by_key(|t| std::cmp::Reverse(t.timestamp));
        for (group, node) in nodes {
            let group = if group.is_empty() {
                "%UNKNOWN_GROUP%".to_string()
            } else {
                group
            };
            match graph.consumers.iter_mut().find(|g| g.group == group) {
                Some(g) => g.consumptions.push(node),
                None => graph.consumers.push(GroupNodes {
                    group,
                    consumptions: vec![node],
                }),
            }
        }
        for g in &mut graph.consumers {
            g.consumptions.sort_by_key(|n| std::cmp::Reverse(n.begin));
        }
        graph
    }
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

    fn traced(body: &str, host: &str) -> Vec<Traced> {
        decode(body)
            .into_iter()
            .map(|record| Traced {
                record,
                client_host: host.into(),
            })
            .collect()
    }

    /// Consumptions pair by request id whatever order their records arrive in, group by
    /// consumer group, and a consumption without its SubAfter is "unknown"; the last Pub
    /// is the send; transaction ends come newest first.
    #[test]
    fn graph_pairs_consumptions_and_keeps_the_last_send() {
        let mut records = traced(
            concat!(
                "SubAfter\u{1}R2\u{1}ID\u{1}4\u{1}false\u{1}k\u{1}4\u{1}1000000000250\u{1}G1\u{2}",
                "Pub\u{1}1000000000000\u{1}DefaultRegion\u{1}P\u{1}T\u{1}ID\u{1}tag\u{1}k\u{1}b:1\u{1}5\u{1}9\u{1}1\u{1}OFF\u{1}false\u{2}",
                "Pub\u{1}1000000000010\u{1}DefaultRegion\u{1}P\u{1}T\u{1}ID\u{1}tag\u{1}k\u{1}b:1\u{1}5\u{1}7\u{1}1\u{1}OFF\u{1}true\u{2}",
                "EndTransaction\u{1}1000000000020\u{1}DefaultRegion\u{1}P\u{1}T\u{1}ID\u{1}tag\u{1}k\u{1}b:1\u{1}2\u{1}TX\u{1}UNKNOW\u{1}false\u{2}",
                "EndTransaction\u{1}1000000000090\u{1}DefaultRegion\u{1}P\u{1}T\u{1}ID\u{1}tag\u{1}k\u{1}b:1\u{1}2\u{1}TX\u{1}COMMIT_MESSAGE\u{1}true\u{2}",
            ),
            "10.0.0.1",
        );
        records.extend(traced(
            concat!(
                "SubBefore\u{1}1000000000200\u{1}DefaultRegion\u{1}G1\u{1}R2\u{1}ID\u{1}1\u{1}k\u{2}",
                "SubBefore\u{1}1000000000100\u{1}DefaultRegion\u{1}G1\u{1}R1\u{1}ID\u{1}0\u{1}k\u{2}",
                "SubBefore\u{1}1000000000150\u{1}DefaultRegion\u{1}G2\u{1}R3\u{1}ID\u{1}0\u{1}k\u{2}",
                "SubAfter\u{1}R3\u{1}ID\u{1}3\u{1}true\u{1}k\u{1}0\u{1}\u{1}\u{2}",
            ),
            "10.0.0.2",
        ));
        let g = TraceGraph::build(&records);
        let p = g.producer.expect("a send");
        assert_eq!(
            (p.begin, p.end, p.cost_ms, p.status),
            (1000000000010, 1000000000017, 7, "success")
        );
        assert_eq!(
            (p.msg_type, p.client_host.as_str()),
            ("Trans_Msg_Half", "10.0.0.1")
        );
        assert_eq!(g.transactions.len(), 2);
        assert_eq!(g.transactions[0].state, "COMMIT_MESSAGE");
        assert!(g.transactions[0].from_check);
        let names: Vec<_> = g.consumers.iter().map(|c| c.group.as_str()).collect();
        assert_eq!(names, ["G1", "G2"]);
        let g1 = &g.consumers[0].consumptions;
        assert_eq!(g1.len(), 2);
        // newest first: the retry (R2) failed after 4 ms, R1 never reported back
        assert_eq!(
            (g1[0].request_id.as_str(), g1[0].status, g1[0].retry_times),
            ("R2", "failed", 1)
        );
        assert_eq!(
            (g1[0].begin, g1[0].end, g1[0].cost_ms),
            (1000000000200, 1000000000250, 4)
        );
        assert_eq!(
            (g1[1].status, g1[1].cost_ms, g1[1].end),
            ("unknown", -1, -1)
        );
        assert_eq!(g1[1].client_host, "10.0.0.2");
        // a cloud-channel SubAfter has no end time: begin + cost
        let g2 = &g.consumers[1].consumptions[0];
        assert_eq!((g2.end, g2.status), (1000000000153, "success"));
    }
}
