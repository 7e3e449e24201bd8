//! Codec micro-benchmarks: a Go client's SEND_MESSAGE frame decoded and re-encoded, and a
//! 1 KiB stored record encoded and decoded. `cargo bench -p ferromq-protocol`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferromq_protocol::command::DEFAULT_MAX_FRAME_BYTES;
use ferromq_protocol::header::SendMessageRequestHeader;
use ferromq_protocol::message::{encode_properties, MessageExt};
use ferromq_protocol::RemotingCommand;

/// A SEND_MESSAGE frame captured from the official Go client v2.1.2.
const GO_SEND_FRAME: &[u8] = include_bytes!("../tests/fixtures/go-client-v2.1.2/send_message.bin");

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode Go SEND_MESSAGE", |b| {
        b.iter_batched(
            || BytesMut::from(GO_SEND_FRAME),
            |mut buf| RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let cmd =
        RemotingCommand::decode_frame(&mut BytesMut::from(GO_SEND_FRAME), DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .expect("a whole frame");
    g.bench_function("decode send header fields", |b| {
        b.iter(|| SendMessageRequestHeader::decode_request(&cmd).unwrap())
    });
    let mut out = BytesMut::with_capacity(4096);
    g.bench_function("encode Go SEND_MESSAGE", |b| {
        b.iter(|| {
            out.clear();
            cmd.encode(&mut out);
        })
    });
    g.finish();
}

fn records(c: &mut Criterion) {
    let msg = MessageExt {
        topic: "BenchmarkTest".into(),
        queue_id: 3,
        born_host: "127.0.0.1:5000".parse().unwrap(),
        store_host: "127.0.0.1:10911".parse().unwrap(),
        body: Bytes::from(vec![b'x'; 1024]),
        properties: encode_properties([
            ("TAGS", "TagA"),
            ("UNIQ_KEY", "7F0000010001000000000000000A"),
        ]),
        ..Default::default()
    };
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Bytes(msg.encoded_len() as u64));
    let mut out = BytesMut::with_capacity(2048);
    g.bench_function("encode 1 KiB", |b| {
        b.iter(|| {
            out.clear();
            msg.encode(&mut out);
        })
    });
    let mut encoded = BytesMut::new();
    msg.encode(&mut encoded);
    g.bench_function("decode 1 KiB", |b| {
        b.iter(|| MessageExt::decode(&encoded).unwrap())
    });
    g.finish();
}

criterion_group!(benches, frames, records);
criterion_main!(benches);
