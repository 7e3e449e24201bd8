//! Apache's POP "extra info" (`ExtraInfoUtil`), the receipt handle of a popped message,
//! remoting and gRPC alike (`ReceiptHandle`): space-separated
//! `startOffset popTime invisibleTime reviveQid topicType brokerName queueId [queueOffset
//! [commitLogOffset]]`. Fields are read where they are needed, as Apache's getters do, so a
//! reader checks only the ones it uses.

/// A parsed extra info: its fields, at least the seven every variant has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraInfo<'a> {
    fields: Vec<&'a str>,
}

impl<'a> ExtraInfo<'a> {
    /// Splits `text`; `None` when it has fewer than seven fields.
    pub fn parse(text: &'a str) -> Option<Self> {
        let fields: Vec<&str> = text.split(' ').collect();
        (fields.len() >= 7).then_some(ExtraInfo { fields })
    }

    fn num<T: std::str::FromStr>(&self, at: usize) -> Option<T> {
        self.fields.get(at)?.parse().ok()
    }

    pub fn pop_time(&self) -> Option<i64> {
        self.num(1)
    }

    pub fn invisible_ms(&self) -> Option<i64> {
        self.num(2)
    }

    pub fn revive_qid(&self) -> Option<i32> {
        self.num(3)
    }

    /// Apache's topic type: "1" and "2" mark the group's retry topic (V1, V2).
    pub fn retry_topic(&self) -> bool {
        matches!(self.fields[4], "1" | "2")
    }

    pub fn broker_name(&self) -> &'a str {
        self.fields[5]
    }

    pub fn queue_id(&self) -> Option<i32> {
        self.num(6)
    }

    /// The message's queue offset (absent from the seven-field variant).
    pub fn queue_offset(&self) -> Option<u64> {
        self.num(7)
    }

    /// The commit-log offset the gRPC handle appends: `Some(None)` when absent, `None` when
    /// present but not a number.
    pub fn commit_log_offset(&self) -> Option<Option<i64>> {
        match self.fields.get(8) {
            None => Some(None),
            Some(c) => c.parse().ok().map(Some),
        }
    }
}

/// Writes the nine-field handle of one delivery (start offset = the message's own offset,
/// revive queue 0, as FerroMQ keeps no revive queues).
pub fn format(
    pop_time: i64,
    invisible_ms: i64,
    retry_topic: bool,
    broker_name: &str,
    queue_id: i32,
    queue_offset: u64,
    commit_log_offset: i64,
) -> String {
    let topic_type = u8::from(retry_topic);
    format!(
        "{queue_offset} {pop_time} {invisible_ms} 0 {topic_type} {broker_name} {queue_id} {queue_offset} {commit_log_offset}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_where_they_stand() {
        let text = format(1_700, 30_000, true, "broker-a", 2, 17, 4096);
        assert_eq!(text, "17 1700 30000 0 1 broker-a 2 17 4096");
        let e = ExtraInfo::parse(&text).unwrap();
        assert_eq!(
            (e.pop_time(), e.invisible_ms(), e.revive_qid()),
            (Some(1_700), Some(30_000), Some(0))
        );
        assert!(e.retry_topic());
        assert_eq!(
            (e.broker_name(), e.queue_id(), e.queue_offset()),
            ("broker-a", Some(2), Some(17))
        );
        assert_eq!(e.commit_log_offset(), Some(Some(4096)));
        let seven = ExtraInfo::parse("5 1 2 999 0 b 3").unwrap();
        assert_eq!(
            (seven.queue_offset(), seven.commit_log_offset()),
            (None, Some(None))
        );
        assert_eq!(ExtraInfo::parse("1 2 3 4 5 6"), None);
        assert_eq!(
            ExtraInfo::parse("1 2 3 4 5 6 7 8 x")
                .unwrap()
                .commit_log_offset(),
            None
        );
    }
}
