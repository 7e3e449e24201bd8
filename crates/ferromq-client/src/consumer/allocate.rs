//! Queue allocation among a group's consumers.

use crate::message::MessageQueue;

/// Apache's "allocate averagely" (`ferromq_protocol::rebalance`): contiguous blocks; the
/// first `queues % consumers` consumers get one extra. Go and Java clients do the same, so
/// mixed-language groups agree.
pub fn allocate_averagely(
    me: &str,
    consumers: &[String],
    queues: &[MessageQueue],
) -> Vec<MessageQueue> {
    ferromq_protocol::rebalance::allocate_averagely(me, consumers, queues)
        .into_iter()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n)
            .map(|queue_id| MessageQueue {
                topic: "T".into(),
                broker_name: "b".into(),
                queue_id,
            })
            .collect()
    }

    fn ids(qs: Vec<MessageQueue>) -> Vec<i32> {
        qs.into_iter().map(|q| q.queue_id).collect()
    }

    #[test]
    fn queues_are_split_in_contiguous_blocks() {
        let c: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        assert_eq!(ids(allocate_averagely("a", &c, &queues(8))), vec![0, 1, 2]);
        assert_eq!(ids(allocate_averagely("b", &c, &queues(8))), vec![3, 4, 5]);
        assert_eq!(ids(allocate_averagely("c", &c, &queues(8))), vec![6, 7]);
        assert_eq!(
            ids(allocate_averagely("c", &c, &queues(2))),
            Vec::<i32>::new()
        );
        assert_eq!(
            ids(allocate_averagely("x", &c, &queues(8))),
            Vec::<i32>::new()
        );
    }

    #[test]
    fn every_queue_goes_to_exactly_one_consumer() {
        for n in 1..6 {
            for q in 0..20 {
                let c: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
                let mut all: Vec<i32> = c
                    .iter()
                    .flat_map(|me| ids(allocate_averagely(me, &c, &queues(q))))
                    .collect();
                all.sort();
                assert_eq!(all, (0..q).collect::<Vec<_>>(), "{n} consumers, {q} queues");
            }
        }
    }
}
