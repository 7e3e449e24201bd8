//! Store micro-benchmarks on real files in a temp directory: commit-log append (record and
//! consume-queue entry in one step) and consume-queue reads. `cargo bench -p ferromq-store`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_store::{MessageStore, PutMessage, StoreConfig};

const QUEUES: i32 = 8;

fn put(queue: i32, size: usize) -> PutMessage {
    let props = encode_properties([
        ("TAGS", "TagA"),
        ("UNIQ_KEY", "7F0000010001000000000000000A"),
    ]);
    let m = MessageExt {
        topic: "BenchmarkTest".into(),
        queue_id: queue,
        born_host: "127.0.0.1:5000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        body: bytes::Bytes::from(vec![b'x'; size]),
        properties: props.clone(),
        ..Default::default()
    };
    let mut record = BytesMut::new();
    m.encode(&mut record);
    PutMessage::new("BenchmarkTest".into(), queue, &props, record)
}

fn open(dir: &std::path::Path) -> MessageStore {
    let mut config = StoreConfig::new(dir);
    config.segment_bytes = 256 << 20;
    MessageStore::open(config).unwrap()
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut g = c.benchmark_group("append");
    for batch in [1usize, 32] {
        g.throughput(Throughput::Elements(batch as u64));
        let mut queue = 0;
        g.bench_function(format!("1 KiB × {batch}"), |b| {
            b.iter_batched(
                || {
                    queue = (queue + 1) % QUEUES;
                    (0..batch).map(|_| put(queue, 1024)).collect::<Vec<_>>()
                },
                |mut msgs| store.append(&mut msgs).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn consume_queue_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    const STORED: u64 = 20_000;
    for chunk in 0..STORED / 100 {
        let mut msgs: Vec<_> = (0..100).map(|_| put((chunk % 2) as i32, 1024)).collect();
        store.append(&mut msgs).unwrap();
    }
    let per_queue = STORED / 2;
    let mut g = c.benchmark_group("consume queue");
    g.throughput(Throughput::Elements(32));
    let mut offset = 0;
    g.bench_function("pull 32 × 1 KiB", |b| {
        b.iter(|| {
            offset = (offset + 32) % (per_queue - 32);
            let r = store
                .get_messages("BenchmarkTest", 0, offset, 32, usize::MAX, &|_| true)
                .unwrap();
            assert_eq!(r.messages.len(), 32);
            r
        })
    });
    g.bench_function("entries 32", |b| {
        b.iter(|| {
            offset = (offset + 32) % (per_queue - 32);
            store.queue_entries("BenchmarkTest", 0, offset, 32).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, append, consume_queue_read);
criterion_main!(benches);
