//! A full disk: sends are refused with a clear error before the store's file system fills,
//! what was stored stays intact (also across a crash), and sends are accepted again by
//! themselves once space is freed. The store lives on a small tmpfs mounted by the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferromq_protocol::message::MessageExt;

use crate::harness::*;

const SERVICE_NOT_AVAILABLE: i32 = 14;
const BODY_BYTES: usize = 16 * 1024;

/// A tmpfs mounted for the test's lifetime (mounting needs root, as CI runs).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
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
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn body(i: u32) -> Vec<u8> {
    let mut b = format!("message-{i:06}-").into_bytes();
    b.resize(BODY_BYTES, b'a' + (i % 26) as u8);
    b
}

/// Pulls queue 0 of `topic` from the start; returns the bodies in order.
async fn stored_bodies(addr: &str, topic: &str) -> Vec<Vec<u8>> {
    let broker = connect(addr).await;
    let mut out = Vec::new();
    let mut offset = 0i64;
    for _ in 0..10_000 {
        let resp = call(&broker, pull_request(topic, 0, offset, 0)).await;
        if resp.code != 0 {
            break;
        }
        let msgs = MessageExt::decode_all(&resp.body).expect("stored records decode");
        if msgs.is_empty() {
            break;
        }
        offset += msgs.len() as i64;
        out.extend(msgs.into_iter().map(|m| m.body.to_vec()));
    }
    out
}

#[tokio::test]
async fn a_full_disk_refuses_sends_keeps_what_was_stored_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _tmpfs = Tmpfs::mount(&data, "64m");
    // Most of the file system taken by something else: about 17 MiB left below the 90% limit.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![1u8; 40 << 20]).unwrap();
    let conf =
        "flushDiskType=SYNC_FLUSH\nmapedFileSizeCommitLog=8388608\ndiskSpaceWarningLevelRatio=90\n";
    let server = Server::start_in(dir, conf, &["--no-dashboard"]);
    let broker = connect(&server.broker).await;

    let mut acked = 0u32;
    let mut refusal = None;
    for i in 0..4000u32 {
        let resp = call(&broker, send_request("full", &body(i), "")).await;
        if resp.code == 0 {
            assert_eq!(i, acked, "a send succeeded after one was refused");
            acked += 1;
        } else {
            refusal = Some(resp);
            break;
        }
    }
    let refusal = refusal.expect("sends were never refused although the disk filled up");
    assert_eq!(refusal.code, SERVICE_NOT_AVAILABLE);
    let remark = refusal.remark.clone().unwrap_or_default();
    assert!(remark.contains("disk is full"), "unclear refusal: {remark}");
    assert!(acked > 100, "only {acked} messages fit before the refusal");
    // The log reaches the test through a pump thread: wait for it (bounded).
    eventually("the refusal is logged", || {
        server.logs().contains("refusing new messages")
    });
    // Still refused while full; everything acknowledged is intact.
    let again = call(&broker, send_request("full", &body(acked), "")).await;
    assert_eq!(again.code, SERVICE_NOT_AVAILABLE);
    let bodies = stored_bodies(&server.broker, "full").await;
    assert_eq!(bodies.len(), acked as usize);
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(b, &body(i as u32), "message {i} damaged");
    }

    // Space returns: sends are accepted again without a restart.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = call(&broker, send_request("full", &body(acked), "")).await;
        if resp.code == 0 {
            acked += 1;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sends still refused after space returned: {:?}",
            resp.remark
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The log reaches the test through a pump thread: wait for it (bounded).
    eventually("the recovery is logged", || {
        server.logs().contains("accepting new messages")
    });

    // A crash after all this loses nothing acknowledged (SYNC_FLUSH) and damages nothing.
    let server = server.crash_and_restart(conf);
    let bodies = stored_bodies(&server.broker, "full").await;
    assert_eq!(bodies.len(), acked as usize);
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(b, &body(i as u32), "message {i} damaged after the restart");
    }
}
