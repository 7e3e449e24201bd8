//! Store behaviour through its public API, on real files in a temp directory.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_store::{FlushMode, GetStatus, MessageStore, PutMessage, StoreConfig};

#[cfg(feature = "power-loss")]
mod power_loss;

fn config(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.segment_bytes = 64 * 1024;
    c.consume_queue_file_entries = 100;
    c.index_slots = 1024;
    c.index_entries = 4096;
    c
}

fn put(topic: &str, queue: i32, body: &[u8], tag: &str, key: &str) -> PutMessage {
    let props = encode_properties([
        ("TAGS", tag),
        ("KEYS", key),
        ("UNIQ_KEY", &format!("U-{key}")),
    ]);
    let m = MessageExt {
        topic: topic.into(),
        queue_id: queue,
        born_host: "127.0.0.1:5000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        body: bytes::Bytes::copy_from_slice(body),
        properties: props.clone(),
        ..Default::default()
    };
    let mut record = BytesMut::new();
    m.encode(&mut record);
    PutMessage::new(topic.into(), queue, &props, record)
}

fn bodies(store: &MessageStore, topic: &str, queue: i32, from: u64) -> Vec<Vec<u8>> {
    let r = store
        .get_messages(topic, queue, from, 1000, usize::MAX, &|_| true)
        .unwrap();
    r.messages
        .iter()
        .map(|m| MessageExt::decode(m).unwrap().0.body.to_vec())
        .collect()
}

fn all_bodies(store: &MessageStore, topic: &str, queue: i32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = store.min_offset(topic, queue);
    loop {
        let r = store
            .get_messages(topic, queue, offset, 32, usize::MAX, &|_| true)
            .unwrap();
        if r.status != GetStatus::Found {
            return out;
        }
        out.extend(
            r.messages
                .iter()
                .map(|m| MessageExt::decode(m).unwrap().0.body.to_vec()),
        );
        offset = r.next_begin_offset;
    }
}

#[test]
fn appended_messages_read_back_with_offsets_assigned() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let mut batch = vec![
        put("T", 0, b"a", "x", "k1"),
        put("T", 1, b"b", "x", "k2"),
        put("T", 0, b"c", "y", "k3"),
    ];
    let results = store.append(&mut batch).unwrap();
    assert_eq!(
        results.iter().map(|r| r.queue_offset).collect::<Vec<_>>(),
        vec![0, 0, 1]
    );
    assert_eq!(
        bodies(&store, "T", 0, 0),
        vec![b"a".to_vec(), b"c".to_vec()]
    );
    let r = store
        .get_messages("T", 0, 0, 10, usize::MAX, &|_| true)
        .unwrap();
    let (m, _) = MessageExt::decode(&r.messages[1]).unwrap();
    assert_eq!(
        (m.queue_offset, m.commit_log_offset),
        (1, results[2].phys_offset as i64)
    );
    assert!(m.store_timestamp > 0);
    assert_eq!(r.next_begin_offset, 2);
    assert_eq!(store.max_offset("T", 0), 2);
}

#[test]
fn a_read_continues_across_a_segment_that_a_record_fills_exactly() {
    // Records of one queue back to back, the segment exactly 4 of them long: the fifth
    // starts at the next segment's base, adjacent to the fourth in offsets but in another
    // file. A read used to stop there for good (found by the power-loss test).
    let dir = tempfile::tempdir().unwrap();
    let entry_len = {
        let probe = put("T", 0, b"body-0", "x", "k0");
        probe.record.len() as u64 + 4
    };
    let mut c = config(dir.path());
    c.segment_bytes = 4 * entry_len;
    let store = MessageStore::open(c).unwrap();
    for n in 0..10 {
        let body = format!("body-{n}");
        store
            .append(&mut [put("T", 0, body.as_bytes(), "x", &format!("k{n}"))])
            .unwrap();
    }
    let r = store
        .get_messages("T", 0, 0, 32, usize::MAX, &|_| true)
        .unwrap();
    assert_eq!(r.messages.len(), 10);
    assert_eq!(r.next_begin_offset, 10);
    assert_eq!(all_bodies(&store, "T", 0).len(), 10);
}

#[test]
fn read_statuses_follow_apache_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(
        store
            .get_messages("T", 0, 0, 1, usize::MAX, &|_| true)
            .unwrap()
            .status,
        GetStatus::NoMessageInQueue
    );
    store.append(&mut [put("T", 0, b"a", "TagA", "k")]).unwrap();
    let get = |o| {
        store
            .get_messages("T", 0, o, 1, usize::MAX, &|_| true)
            .unwrap()
    };
    assert_eq!(get(1).status, GetStatus::OffsetOverflowOne);
    assert_eq!(get(5).status, GetStatus::OffsetOverflowBadly);
    assert_eq!(get(5).next_begin_offset, 1);
    let filtered = store
        .get_messages("T", 0, 0, 1, usize::MAX, &|tag| tag == 42)
        .unwrap();
    assert_eq!(
        (filtered.status, filtered.next_begin_offset),
        (GetStatus::NoMatchedMessage, 1)
    );
}

#[test]
fn tag_filter_skips_entries_but_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let mut batch: Vec<PutMessage> = (0..10)
        .map(|i| put("T", 0, &[i], if i % 2 == 0 { "even" } else { "odd" }, "k"))
        .collect();
    store.append(&mut batch).unwrap();
    let even = ferromq_protocol::message::tag_hash("even");
    let r = store
        .get_messages("T", 0, 0, 32, usize::MAX, &|t| t == even)
        .unwrap();
    assert_eq!(r.messages.len(), 5);
    assert_eq!(r.next_begin_offset, 10);
}

#[test]
fn segments_roll_over_and_records_never_span_two() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let body = vec![7u8; 1000];
    for _ in 0..200 {
        store.append(&mut [put("T", 0, &body, "t", "k")]).unwrap();
    }
    let segments = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .count();
    assert!(
        segments >= 3,
        "expected several 64 KiB segments, found {segments}"
    );
    assert_eq!(all_bodies(&store, "T", 0).len(), 200);
    let names: Vec<u64> = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    assert!(names.iter().all(|n| n % (64 * 1024) == 0));
}

#[test]
fn reopen_after_clean_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        for i in 0..50u8 {
            store
                .append(&mut [put("T", (i % 2) as i32, &[i], "t", &format!("k{i}"))])
                .unwrap();
        }
        store.checkpoint().unwrap();
    }
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(all_bodies(&store, "T", 0).len(), 25);
    assert_eq!(all_bodies(&store, "T", 1).len(), 25);
    store.append(&mut [put("T", 0, b"more", "t", "k")]).unwrap();
    assert_eq!(store.max_offset("T", 0), 26);
}

/// Descriptors this process holds open on files under `dir`.
fn open_files_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn many_queues_hold_no_more_descriptors_than_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || {
        let mut c = config(dir.path());
        c.open_queue_files = 4;
        c
    };
    {
        let store = MessageStore::open(cfg()).unwrap();
        // 60 queues of 250 messages: three files each (100 entries per file).
        for round in 0..250u32 {
            let mut batch: Vec<PutMessage> = (0..60)
                .map(|q| {
                    put(
                        &format!("T{}", q % 6),
                        q / 6,
                        &round.to_be_bytes(),
                        "t",
                        "k",
                    )
                })
                .collect();
            store.append(&mut batch).unwrap();
        }
        store.checkpoint().unwrap();
        let queue_dir = dir.path().join("consumequeue");
        assert!(
            open_files_under(&queue_dir) <= 4,
            "{} open",
            open_files_under(&queue_dir)
        );
        for q in 0..60 {
            let got = all_bodies(&store, &format!("T{}", q % 6), q / 6);
            assert_eq!(got.len(), 250, "queue {q}");
            assert_eq!(got[249], 249u32.to_be_bytes());
        }
        assert!(open_files_under(&queue_dir) <= 4);
    }
    let store = MessageStore::open(cfg()).unwrap();
    assert!(open_files_under(&dir.path().join("consumequeue")) <= 4);
    assert_eq!(all_bodies(&store, "T5", 9).len(), 250);
    assert_eq!(store.max_offset("T3", 4), 250);
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir.join("commitlog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn truncated_tail_is_cut_and_queues_rebuilt_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        for i in 0..10u8 {
            store
                .append(&mut [put("T", 0, &[i; 100], "t", "k")])
                .unwrap();
        }
        // No checkpoint: as after a crash, queues must be rebuilt from the log.
    }
    std::fs::remove_file(dir.path().join("checkpoint")).ok();
    let seg = last_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    // Also lose the consume queue entirely (without a write-out it may not be on disk yet).
    match std::fs::remove_dir_all(dir.path().join("consumequeue")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
        _ => {}
    }
    let store = MessageStore::open(config(dir.path())).unwrap();
    let got = all_bodies(&store, "T", 0);
    assert_eq!(got.len(), 9);
    assert_eq!(got[8], vec![8u8; 100]);
    let r = store
        .append(&mut [put("T", 0, b"after", "t", "k")])
        .unwrap();
    assert_eq!(r[0].queue_offset, 9);
    assert_eq!(all_bodies(&store, "T", 0).last().unwrap(), b"after");
}

/// Queues open on first use after a start: one the recovery never touched must still drop
/// entries its files hold for records the crash lost.
#[test]
fn a_queue_opened_after_recovery_drops_entries_for_lost_records() {
    let dir = tempfile::tempdir().unwrap();
    let checkpointed_end;
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        for i in 0..10u8 {
            store.append(&mut [put("A", 0, &[i], "t", "k")]).unwrap();
            store.append(&mut [put("B", 0, &[i], "t", "k")]).unwrap();
        }
        store.checkpoint().unwrap();
        checkpointed_end = store.write_offset();
        // Enough for B's queue file to take them (written behind in 256s)...
        for i in 0..300u32 {
            store
                .append(&mut [put("B", 0, &i.to_be_bytes(), "t", "k")])
                .unwrap();
        }
    }
    // ...then the crash loses every record after the checkpoint.
    let seg = last_segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(
            &vec![0u8; (len - checkpointed_end) as usize],
            checkpointed_end,
        )
        .unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.max_offset("A", 0), 10);
    assert_eq!(
        store.max_offset("B", 0),
        10,
        "B's entries for the lost records are gone"
    );
    assert_eq!(all_bodies(&store, "B", 0).len(), 10);
    let r = store.append(&mut [put("B", 0, b"next", "t", "k")]).unwrap();
    assert_eq!(r[0].queue_offset, 10);
    assert_eq!(all_bodies(&store, "B", 0).last().unwrap(), b"next");
}

#[test]
fn torn_record_with_bad_crc_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let offsets;
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        let mut batch: Vec<PutMessage> =
            (0..5u8).map(|i| put("T", 0, &[i; 64], "t", "k")).collect();
        offsets = store.append(&mut batch).unwrap();
    }
    std::fs::remove_file(dir.path().join("checkpoint")).ok();
    // Flip a body byte of the fourth record (the body starts at 88 with IPv4 hosts): its
    // body CRC no longer matches.
    let seg = last_segment(dir.path());
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let pos = offsets[3].phys_offset + 88 + 10;
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xFF], pos).unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(
        all_bodies(&store, "T", 0),
        (0..3u8).map(|i| vec![i; 64]).collect::<Vec<_>>()
    );
    assert_eq!(store.write_offset(), offsets[3].phys_offset);
}

#[test]
fn garbage_after_the_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        store.append(&mut [put("T", 0, b"kept", "t", "k")]).unwrap();
    }
    std::fs::remove_file(dir.path().join("checkpoint")).ok();
    let seg = last_segment(dir.path());
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&[0u8; 500])
        .unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(all_bodies(&store, "T", 0), vec![b"kept".to_vec()]);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), store.write_offset());
}

#[test]
fn consume_queue_entries_past_the_checkpoint_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        store.append(&mut [put("T", 0, b"one", "t", "k")]).unwrap();
        store.checkpoint().unwrap();
        store
            .append(&mut [
                put("T", 0, b"two", "t", "k"),
                put("T", 0, b"three", "t", "k"),
            ])
            .unwrap();
    }
    // Lose the queue's unflushed tail: truncate the consume queue to its first entry.
    let cq = dir.path().join("consumequeue/T/0/00000000000000000000");
    OpenOptions::new()
        .write(true)
        .open(&cq)
        .unwrap()
        .set_len(28)
        .unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(
        all_bodies(&store, "T", 0),
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
}

#[test]
fn messages_are_found_by_key_and_unique_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    store
        .append(&mut [
            put("T", 0, b"order-1", "t", "order1 buyer7"),
            put("T", 1, b"order-2", "t", "order2"),
        ])
        .unwrap();
    let found = |key: &str| {
        store
            .query_by_key("T", key, 10, 0, i64::MAX)
            .unwrap()
            .iter()
            .map(|r| MessageExt::decode(r).unwrap().0.body.to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(found("buyer7"), vec![b"order-1".to_vec()]);
    assert_eq!(found("U-order2"), vec![b"order-2".to_vec()]);
    assert!(found("nobody").is_empty());
    assert!(store
        .query_by_key("OTHER", "order1", 10, 0, i64::MAX)
        .unwrap()
        .is_empty());
}

#[test]
fn index_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        store
            .append(&mut [put("T", 0, b"x", "t", "findme")])
            .unwrap();
        store.checkpoint().unwrap();
    }
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(
        store
            .query_by_key("T", "findme", 10, 0, i64::MAX)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn retention_deletes_old_segments_and_moves_queue_min_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let body = vec![1u8; 1000];
    for _ in 0..200 {
        store.append(&mut [put("T", 0, &body, "t", "k")]).unwrap();
    }
    let before = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .count();
    let min = store
        .delete_expired(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    let after = std::fs::read_dir(dir.path().join("commitlog"))
        .unwrap()
        .count();
    assert_eq!(after, 1, "all but the active segment go ({before} before)");
    assert_eq!(store.min_commit_log_offset(), min);
    let qmin = store.min_offset("T", 0);
    assert!(qmin > 0);
    let r = store
        .get_messages("T", 0, 0, 1, usize::MAX, &|_| true)
        .unwrap();
    assert_eq!(
        (r.status, r.next_begin_offset),
        (GetStatus::OffsetTooSmall, qmin)
    );
    assert_eq!(all_bodies(&store, "T", 0).len() as u64, 200 - qmin);
    // Nothing newer than the cutoff is touched.
    assert_eq!(
        store
            .delete_expired(SystemTime::now() - Duration::from_secs(3600))
            .unwrap(),
        min
    );
}

#[test]
fn search_by_time_and_earliest_store_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let first = store.append(&mut [put("T", 0, b"a", "t", "k")]).unwrap()[0].store_ms;
    std::thread::sleep(Duration::from_millis(20));
    let second = store.append(&mut [put("T", 0, b"b", "t", "k")]).unwrap()[0].store_ms;
    assert_eq!(store.search_offset_by_time("T", 0, first).unwrap(), 0);
    assert_eq!(store.search_offset_by_time("T", 0, second).unwrap(), 1);
    assert_eq!(store.search_offset_by_time("T", 0, second + 1).unwrap(), 2);
    assert_eq!(store.earliest_store_time("T", 0).unwrap(), Some(first));
}

#[test]
fn second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _store = MessageStore::open(config(dir.path())).unwrap();
    assert!(matches!(
        MessageStore::open(config(dir.path())),
        Err(ferromq_store::StoreError::Locked { .. })
    ));
}

#[test]
fn flush_makes_the_written_offset_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.flush_mode = FlushMode::Sync;
    let store = MessageStore::open(c).unwrap();
    let r = store.append(&mut [put("T", 0, b"a", "t", "k")]).unwrap();
    assert!(store.flushed_offset() < r[0].end_offset);
    assert_eq!(store.flush().unwrap(), r[0].end_offset);
    assert_eq!(store.flushed_offset(), r[0].end_offset);
}

#[test]
fn deleted_topic_has_no_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    store.append(&mut [put("T", 0, b"a", "t", "k")]).unwrap();
    store.delete_topic("T").unwrap();
    assert_eq!(store.max_offset("T", 0), 0);
    assert!(!dir.path().join("consumequeue/T").exists());
}

#[test]
fn index_rolls_to_new_files_and_finds_keys_in_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.index_entries = 8;
    c.index_slots = 4;
    {
        let store = MessageStore::open(c.clone()).unwrap();
        for i in 0..20 {
            store
                .append(&mut [put(
                    "T",
                    0,
                    format!("m{i}").as_bytes(),
                    "t",
                    &format!("key{i}"),
                )])
                .unwrap();
        }
        for i in 0..20 {
            assert_eq!(
                store
                    .query_by_key("T", &format!("key{i}"), 5, 0, i64::MAX)
                    .unwrap()
                    .len(),
                1,
                "key{i}"
            );
        }
        store.checkpoint().unwrap();
    }
    // Each message indexes two keys (KEYS and UNIQ_KEY): 40 entries over files of 8.
    assert!(std::fs::read_dir(dir.path().join("index")).unwrap().count() >= 5);
    let store = MessageStore::open(c).unwrap();
    for i in 0..20 {
        let hits = store
            .query_by_key("T", &format!("U-key{i}"), 5, 0, i64::MAX)
            .unwrap();
        assert_eq!(
            MessageExt::decode(&hits[0]).unwrap().0.body.to_vec(),
            format!("m{i}").into_bytes()
        );
    }
}

#[test]
fn index_entries_after_the_checkpoint_are_rebuilt_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        store
            .append(&mut [put("T", 0, b"early", "t", "early")])
            .unwrap();
        store.checkpoint().unwrap();
        store
            .append(&mut [put("T", 0, b"late", "t", "late")])
            .unwrap();
        // Dropped without a checkpoint: the slot table on disk does not know "late".
    }
    let store = MessageStore::open(config(dir.path())).unwrap();
    for key in ["early", "late"] {
        assert_eq!(
            store.query_by_key("T", key, 5, 0, i64::MAX).unwrap().len(),
            1,
            "{key}"
        );
    }
}

#[test]
fn a_million_timers_over_ten_minutes_come_back_bucket_by_bucket() {
    use ferromq_store::timer::{Timer, TimerWheel};
    let dir = tempfile::tempdir().unwrap();
    let base = 1_800_000_000_000i64;
    let span_ms = 600_000i64;
    let n = 1_000_000u64;
    // Timers in a shuffled order of due times, as producers would send them.
    let timers: Vec<Timer> = (0..n)
        .map(|i| {
            let scrambled = (i.wrapping_mul(2_654_435_761) % n) as i64;
            Timer {
                due_ms: base + scrambled * span_ms / n as i64,
                phys: i * 100,
            }
        })
        .collect();
    let mut wheel = TimerWheel::open(dir.path(), 1000, 4000, 64 << 20).unwrap();
    for chunk in timers.chunks(4096) {
        wheel.add(chunk).unwrap();
    }
    assert_eq!(wheel.pending_between(base, base + span_ms), n);
    // Walk the first minute bucket by bucket, as the broker does just before each is due.
    let mut seen = 0u64;
    for b in 0..60 {
        let start = base + b * 1000;
        let bucket = wheel.bucket(start).unwrap();
        assert!(bucket
            .iter()
            .all(|t| t.due_ms >= start && t.due_ms < start + 1000));
        seen += bucket.len() as u64;
    }
    assert_eq!(
        seen,
        n / 10,
        "the first tenth of the window is due in the first minute"
    );
    wheel.flush().unwrap();
    drop(wheel);
    let wheel = TimerWheel::open(dir.path(), 1000, 4000, 64 << 20).unwrap();
    assert_eq!(wheel.bucket(base + 599_000).unwrap().len() as u64, n / 600);
}

/// A tmpfs mounted for one test (mounting needs root, as CI runs).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs at {} failed: this test needs root",
            path.display()
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn an_append_that_runs_out_of_space_is_rolled_back_and_the_store_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fs");
    let _fs = Tmpfs::mount(&root, "16m");
    let filler = root.join("filler");
    std::fs::write(&filler, vec![1u8; 4 << 20]).unwrap();
    let mut c = config(&root.join("store"));
    c.segment_bytes = 1 << 20;
    let store = MessageStore::open(c.clone()).unwrap();
    let body = |i: usize| {
        let mut b = format!("m{i:05}-").into_bytes();
        b.resize(48 * 1024, b'x');
        b
    };
    let mut stored = 0;
    let err = loop {
        assert!(stored < 1000, "the 16 MiB file system never filled up");
        // Batches of three: a failure can strike after part of a batch was written.
        let mut batch: Vec<_> = (stored..stored + 3)
            .map(|i| put("T", 0, &body(i), "", &format!("k{i}")))
            .collect();
        match store.append(&mut batch) {
            Ok(_) => stored += 3,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&err, ferromq_store::StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull),
        "{err}"
    );
    let expected: Vec<Vec<u8>> = (0..stored).map(body).collect();
    assert_eq!(
        bodies(&store, "T", 0, 0),
        expected,
        "a rolled-back append left something visible"
    );
    // Space returns: appends go on right after the last good one.
    std::fs::remove_file(&filler).unwrap();
    let mut more = vec![put("T", 0, &body(stored), "", "after")];
    let r = store.append(&mut more).unwrap();
    assert_eq!(r[0].queue_offset, stored as u64);
    drop(store);
    let reopened = MessageStore::open(c).unwrap();
    let mut expected = expected;
    expected.push(body(stored));
    assert_eq!(
        bodies(&reopened, "T", 0, 0),
        expected,
        "recovery found a different log"
    );
}

/// Copies everything new from `master` to `slave` in chunks of `chunk` bytes, as a
/// replication stream would, and returns the slave's end.
fn replicate(master: &MessageStore, slave: &MessageStore, chunk: usize) -> u64 {
    for _ in 0..100_000 {
        let from = slave.replica_offset();
        let data = master.read_log(from, chunk).unwrap();
        if data.is_empty() {
            return from;
        }
        slave.append_log(from, &data).unwrap();
    }
    panic!("replication did not converge");
}

#[test]
fn a_replica_copies_the_log_byte_for_byte_and_serves_the_same_queues() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(config(m_dir.path())).unwrap();
    // About 3.5 segments of 64 KiB, over two queues.
    for i in 0..200u32 {
        let body = vec![(i % 251) as u8; 1000 + (i as usize % 7) * 13];
        master
            .append(&mut [put("T", (i % 2) as i32, &body, "t", &format!("k{i}"))])
            .unwrap();
    }
    {
        let slave = MessageStore::open(config(s_dir.path())).unwrap();
        // Odd chunks split records and segment end markers between calls.
        let end = replicate(&master, &slave, 777);
        assert_eq!(end, master.write_offset());
        for q in 0..2 {
            assert_eq!(all_bodies(&slave, "T", q), all_bodies(&master, "T", q));
            assert_eq!(slave.max_offset("T", q), 100);
        }
        assert_eq!(
            slave.query_by_key("T", "k77", 4, 0, i64::MAX).unwrap(),
            master.query_by_key("T", "k77", 4, 0, i64::MAX).unwrap()
        );
    }
    for (m, s) in std::fs::read_dir(m_dir.path().join("commitlog"))
        .unwrap()
        .zip(std::fs::read_dir(s_dir.path().join("commitlog")).unwrap())
    {
        let (m, s) = (m.unwrap().path(), s.unwrap().path());
        assert_eq!(m.file_name(), s.file_name());
        assert!(
            std::fs::read(&m).unwrap() == std::fs::read(&s).unwrap(),
            "{m:?} differs"
        );
    }
    // The copy survives a restart and goes on from where it stopped.
    let slave = MessageStore::open(config(s_dir.path())).unwrap();
    master
        .append(&mut [put("T", 0, b"after restart", "t", "k")])
        .unwrap();
    replicate(&master, &slave, 1 << 20);
    assert_eq!(all_bodies(&slave, "T", 0).last().unwrap(), b"after restart");
    assert_eq!(slave.max_offset("T", 0), 101);
}

#[test]
fn a_replica_started_part_way_keeps_the_masters_queue_offsets() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(config(m_dir.path())).unwrap();
    for i in 0..150u32 {
        master
            .append(&mut [put("T", 0, &[i as u8; 1000], "t", "k")])
            .unwrap();
    }
    let last_segment_base = master.write_offset() - master.write_offset() % (64 * 1024);
    let slave = MessageStore::open(config(s_dir.path())).unwrap();
    assert!(matches!(
        slave.append_log(last_segment_base + 1, b"x"),
        Err(ferromq_store::StoreError::ReplicaOffset { .. })
    ));
    slave
        .append_log(
            last_segment_base,
            &master.read_log(last_segment_base, 1 << 20).unwrap(),
        )
        .unwrap();
    let first = slave.min_offset("T", 0);
    assert!(first > 0);
    assert_eq!(slave.max_offset("T", 0), 150);
    assert_eq!(
        all_bodies(&slave, "T", 0),
        all_bodies(&master, "T", 0)[first as usize..].to_vec()
    );
    drop(slave);
    let slave = MessageStore::open(config(s_dir.path())).unwrap();
    assert_eq!(slave.min_offset("T", 0), first);
    assert_eq!(slave.max_offset("T", 0), 150);
}

#[test]
fn replica_bytes_that_are_not_records_are_refused_and_cut() {
    let (m_dir, s_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(config(m_dir.path())).unwrap();
    master
        .append(&mut [put("T", 0, b"good", "t", "k")])
        .unwrap();
    let slave = MessageStore::open(config(s_dir.path())).unwrap();
    let good = replicate(&master, &slave, 1 << 20);
    // A record whose body was changed in flight.
    master
        .append(&mut [put("T", 0, b"second", "t", "k")])
        .unwrap();
    let mut bad = master.read_log(good, 1 << 20).unwrap().to_vec();
    bad[88 + 2] ^= 0xFF;
    assert!(matches!(
        slave.append_log(good, &bad),
        Err(ferromq_store::StoreError::ReplicaRecord { .. })
    ));
    assert_eq!(slave.replica_offset(), good);
    // Garbage that is not even a record head.
    assert!(slave.append_log(good, &[0xAB; 64]).is_err());
    assert_eq!(slave.replica_offset(), good);
    assert_eq!(replicate(&master, &slave, 1 << 20), master.write_offset());
    assert_eq!(
        all_bodies(&slave, "T", 0),
        vec![b"good".to_vec(), b"second".to_vec()]
    );
}

#[test]
fn a_truncated_tail_stays_gone_after_a_restart_and_the_queue_goes_on_from_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cut;
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        let mut batch: Vec<PutMessage> = (0..10u8)
            .map(|i| put("T", 0, &[i; 700], "t", "k"))
            .collect();
        let r = store.append(&mut batch).unwrap();
        store.checkpoint().unwrap();
        cut = r[6].phys_offset;
        assert!(matches!(
            store.truncate_log(cut + 1),
            Err(ferromq_store::StoreError::Unaligned { .. })
        ));
        store.truncate_log(cut).unwrap();
        assert_eq!(store.write_offset(), cut);
        assert_eq!(store.max_offset("T", 0), 6);
        assert_eq!(all_bodies(&store, "T", 0).len(), 6);
    }
    // No clean shutdown matters here: the cut and the checkpoint were made durable.
    let store = MessageStore::open(config(dir.path())).unwrap();
    assert_eq!(store.write_offset(), cut, "the cut tail is not recovered");
    assert_eq!(store.max_offset("T", 0), 6);
    let r = store.append(&mut [put("T", 0, b"new", "t", "k")]).unwrap();
    assert_eq!((r[0].phys_offset, r[0].queue_offset), (cut, 6));
    assert_eq!(all_bodies(&store, "T", 0).last().unwrap(), b"new");
}

/// Reads stop at the read limit (the confirm offset): a reader caught up to it is told so
/// (as at the queue's end), raising the limit shows the rest, and cutting the log back
/// lowers it with the cut.
#[test]
fn reads_stop_at_the_confirm_offset() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path())).unwrap();
    let mut ends = Vec::new();
    for i in 0..5u32 {
        store
            .append(&mut [put("T", 0, format!("m{i}").as_bytes(), "t", "k")])
            .unwrap();
        ends.push(store.write_offset());
    }
    store.set_read_limit(ends[1]);
    assert_eq!(store.read_limit(), ends[1]);
    assert_eq!(
        all_bodies(&store, "T", 0),
        vec![b"m0".to_vec(), b"m1".to_vec()]
    );
    let at_limit = store
        .get_messages("T", 0, 2, 32, usize::MAX, &|_| true)
        .unwrap();
    assert_eq!(at_limit.status, GetStatus::OffsetOverflowOne);
    assert_eq!(at_limit.next_begin_offset, 2);
    store.set_read_limit(u64::MAX);
    assert_eq!(all_bodies(&store, "T", 0).len(), 5);
    assert_eq!(store.read_limit(), store.complete_offset());
    store.truncate_log(ends[2]).unwrap();
    assert_eq!(store.read_limit(), ends[2]);
    store.set_read_limit(ends[3]);
    assert_eq!(store.read_limit(), ends[2], "never past the log's end");
}

/// The periodic checkpoint leaves a quiet queue's few new entries in memory and records the
/// log offset of the first of them, so a crash loses none; a busier queue's entries are
/// written, and so is a queue that has no file yet. Keys the index held before the crash are
/// found once, not once per rebuild.
#[test]
fn a_lazy_checkpoint_keeps_quiet_queues_in_memory_and_a_crash_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let queue_file_len = |topic: &str| {
        let path = dir
            .path()
            .join("consumequeue")
            .join(topic)
            .join("0/00000000000000000000");
        std::fs::metadata(path).map(|m| m.len()).ok()
    };
    let quiet = |q: i32, round: &str| {
        put(
            &format!("Q{q}"),
            0,
            round.as_bytes(),
            "t",
            &format!("q{q}{round}"),
        )
    };
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        for q in 0..20 {
            store.append(&mut [quiet(q, "first")]).unwrap();
        }
        store.checkpoint().unwrap();
        for q in 0..20 {
            store.append(&mut [quiet(q, "second")]).unwrap();
        }
        for i in 0..40u8 {
            store
                .append(&mut [put("Busy", 0, &[i], "t", &format!("b{i}"))])
                .unwrap();
        }
        store
            .append(&mut [put("Fresh", 0, b"new", "t", "f")])
            .unwrap();
        store.checkpoint_lazily().unwrap();
        assert_eq!(
            queue_file_len("Q0"),
            Some(28),
            "a quiet queue's new entry stays in memory"
        );
        assert_eq!(queue_file_len("Busy"), Some(40 * 28));
        assert_eq!(
            queue_file_len("Fresh"),
            Some(28),
            "a queue's first entries make its file"
        );
        assert_eq!(
            bodies(&store, "Q7", 0, 0),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        // Dropped without another checkpoint: a crash.
    }
    {
        let store = MessageStore::open(config(dir.path())).unwrap();
        for q in 0..20 {
            assert_eq!(
                all_bodies(&store, &format!("Q{q}"), 0),
                vec![b"first".to_vec(), b"second".to_vec()],
                "Q{q}"
            );
        }
        let busy = all_bodies(&store, "Busy", 0);
        assert_eq!(busy, (0..40u8).map(|i| vec![i]).collect::<Vec<_>>());
        assert_eq!(all_bodies(&store, "Fresh", 0), vec![b"new".to_vec()]);
        for (topic, key) in [("Busy", "b5"), ("Q3", "q3second"), ("Q3", "q3first")] {
            let found = store.query_by_key(topic, key, 5, 0, i64::MAX).unwrap();
            assert_eq!(found.len(), 1, "{topic} {key}");
        }
        // The full checkpoint (a clean stop's) writes every queue.
        store.checkpoint().unwrap();
        assert_eq!(queue_file_len("Q0"), Some(56));
    }
}
