//! Apache's queue allocation among a group's consumers ("allocate averagely"), which
//! clients (client-side rebalancing) and brokers (QUERY_ASSIGNMENT) must compute alike so
//! that mixed groups agree.

/// Contiguous blocks; the first `queues % consumers` consumers get one extra. `me` not
/// among `consumers` gets nothing. Both lists must be sorted as every member sorts them.
pub fn allocate_averagely<'a, Q>(me: &str, consumers: &[String], queues: &'a [Q]) -> Vec<&'a Q> {
    let Some(index) = consumers.iter().position(|c| c == me) else {
        return Vec::new();
    };
    let (n, q) = (consumers.len(), queues.len());
    if q == 0 {
        return Vec::new();
    }
    let rem = q % n;
    let size = if q <= n {
        1
    } else if rem > 0 && index < rem {
        q / n + 1
    } else {
        q / n
    };
    let start = if rem > 0 && index < rem {
        index * size
    } else {
        index * size + rem
    };
    let range = size.min(q.saturating_sub(start));
    (0..range).map(|i| &queues[(start + i) % q]).collect()
}
