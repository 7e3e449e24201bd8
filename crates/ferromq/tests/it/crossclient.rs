//! Messages cross between the Rust client and the official Go client intact.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_client::{
    ConsumeFrom, ConsumeResult, Message, MessageExt, MessageExtExt, Producer, PushConsumer,
    Selector,
};

use crate::harness::Server;

/// Builds the Go helper once; `None` when Go is not installed (the test then says so).
fn go_helper() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/go");
    let out = std::env::temp_dir().join(format!("ferromq-crossclient-{}", std::process::id()));
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg("./crossclient")
        .current_dir(&root)
        .status()
        .ok()?;
    status.success().then_some(out)
}

#[tokio::test]
async fn rust_and_go_clients_read_each_others_messages() {
    let Some(go) = go_helper() else {
        panic!("the Go toolchain is needed for the cross-client test (see scripts/test.sh)");
    };
    let go_path = go.clone();
    let server = Server::start("");
    // Rust → Go.
    let p = Producer::builder()
        .name_servers([server.namesrv.clone()])
        .group("rust-to-go")
        .build()
        .unwrap();
    for i in 0..3 {
        let m = Message::new("rust-to-go", format!("from-rust-{i}"))
            .with_tag(format!("tag{i}"))
            .with_keys([format!("key{i}"), "shared".into()])
            .with_property("color", format!("c{i}"));
        p.send(m).await.unwrap();
    }
    p.shutdown();
    let ns = server.namesrv.clone();
    let go2 = go.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&go2)
            .args([
                "-namesrv",
                &ns,
                "-mode",
                "receive",
                "-topic",
                "rust-to-go",
                "-group",
                "go-reader",
                "-count",
                "3",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let expected: BTreeSet<String> = (0..3)
        .map(|i| format!(r#"{{"body":"from-rust-{i}","tags":"tag{i}","keys":"key{i} shared","props":{{"color":"c{i}"}}}}"#))
        .collect();
    assert_eq!(got, expected);

    // Go → Rust.
    let ns = server.namesrv.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&go)
            .args([
                "-namesrv",
                &ns,
                "-mode",
                "send",
                "-topic",
                "go-to-rust",
                "-count",
                "3",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Arc<Mutex<Vec<MessageExt>>> = Default::default();
    let s = seen.clone();
    let c = PushConsumer::builder()
        .name_servers([server.namesrv.clone()])
        .group("rust-reader")
        .consume_from(ConsumeFrom::FirstOffset)
        .subscribe("go-to-rust", Selector::All)
        .start(move |msgs| {
            let s = s.clone();
            async move {
                s.lock().unwrap().extend(msgs);
                ConsumeResult::Success
            }
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && seen.lock().unwrap().len() < 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got: BTreeSet<(String, String, Vec<String>, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|m| {
            (
                String::from_utf8(m.body.to_vec()).unwrap(),
                m.tag().unwrap_or_default().to_string(),
                m.keys().into_iter().map(str::to_string).collect(),
                ferromq_protocol::message::property(&m.properties, "color")
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<_> = (0..3)
        .map(|i| {
            (
                format!("from-go-{i}"),
                format!("tag{i}"),
                vec![format!("key{i}"), "shared".into()],
                format!("c{i}"),
            )
        })
        .collect();
    assert_eq!(got, expected);
    c.shutdown().await;
    let _ = std::fs::remove_file(go_path);
}
