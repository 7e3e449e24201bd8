//! The store service's acknowledgement contract.

use bytes::BytesMut;
use ferromq_broker::store_service::StoreService;
use ferromq_protocol::message::MessageExt;
use ferromq_store::{FlushMode, MessageStore, PutMessage, StoreConfig};
use std::sync::Arc;
use std::time::Duration;

fn message(body: &[u8]) -> PutMessage {
    let m = MessageExt {
        topic: "T".into(),
        born_host: "127.0.0.1:1".parse().unwrap(),
        store_host: "127.0.0.1:2".parse().unwrap(),
        body: bytes::Bytes::copy_from_slice(body),
        ..Default::default()
    };
    let mut record = BytesMut::new();
    m.encode(&mut record);
    PutMessage::new("T".into(), 0, "", record)
}

fn service(dir: &std::path::Path, mode: FlushMode) -> Arc<StoreService> {
    let mut c = StoreConfig::new(dir);
    c.flush_mode = mode;
    let store = Arc::new(MessageStore::open(c).unwrap());
    StoreService::start(
        store,
        mode,
        Duration::from_secs(3600),
        Duration::from_secs(5),
        ferromq_broker::disk::DiskGuard::new(vec![dir.to_path_buf()], 99.0),
        Default::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_flush_acknowledges_only_after_fsync_covers_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), FlushMode::Sync);
    let mut sends = Vec::new();
    for i in 0..64u8 {
        let svc = svc.clone();
        sends.push(tokio::spawn(async move {
            svc.put(vec![message(&[i])], true).await.unwrap()
        }));
    }
    for s in sends {
        let results = s.await.unwrap();
        assert!(
            svc.store().flushed_offset() >= results[0].end_offset,
            "acknowledged before its fsync"
        );
    }
    svc.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_flush_acknowledges_without_waiting_for_fsync() {
    let dir = tempfile::tempdir().unwrap();
    // The flush interval is an hour: an acknowledgement that waited for fsync would hang.
    let svc = service(dir.path(), FlushMode::Async);
    let r = tokio::time::timeout(Duration::from_secs(5), svc.put(vec![message(b"x")], true))
        .await
        .unwrap()
        .unwrap();
    assert!(svc.store().flushed_offset() < r[0].end_offset);
    svc.shutdown();
    assert!(
        svc.store().flushed_offset() >= r[0].end_offset,
        "shutdown flushes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_are_all_stored_once_in_distinct_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path(), FlushMode::Async);
    let mut sends = Vec::new();
    for i in 0..200u32 {
        let svc = svc.clone();
        sends.push(tokio::spawn(async move {
            svc.put(vec![message(&i.to_be_bytes())], true)
                .await
                .unwrap()[0]
        }));
    }
    let mut offsets = Vec::new();
    for s in sends {
        offsets.push(s.await.unwrap().queue_offset);
    }
    offsets.sort();
    assert_eq!(offsets, (0..200).collect::<Vec<u64>>());
    svc.shutdown();
    assert!(matches!(
        svc.put(vec![message(b"late")], true).await,
        Err(ferromq_broker::store_service::PutError::ShuttingDown)
    ));
}
