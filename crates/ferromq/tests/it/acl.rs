//! ACL (`aclEnable=true`) with the Rust client's credentials and `ferromq admin`'s keys:
//! signed requests pass, unsigned ones and non-admin admin calls are refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferromq_client::{ConsumeFrom, ConsumeResult, Message, Producer, PushConsumer, Selector};

use crate::admin::admin;
use crate::dashboard::http;
use crate::harness::Server;

const ACL: &str = "accounts:
  - accessKey: rust-app-key
    secretKey: rust-app-secret
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - acl-topic=PUB|SUB
  - accessKey: rust-admin-key
    secretKey: rust-admin-secret
    admin: true
    defaultTopicPerm: PUB|SUB
    defaultGroupPerm: PUB|SUB
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_and_admin_cli_sign_their_requests() {
    let files = tempfile::tempdir().unwrap();
    let acl = files.path().join("plain_acl.yml");
    std::fs::write(&acl, ACL).unwrap();
    let server = Server::start_with(
        &format!("aclEnable=true\nplainAclFile={}\n", acl.display()),
        &[
            "--dashboard-credentials",
            "rust-admin-key:rust-admin-secret",
        ],
    );

    let producer = Producer::builder()
        .name_servers([server.namesrv.clone()])
        .group("acl-pg")
        .instance_name("signed")
        .credentials("rust-app-key", "rust-app-secret")
        .build()
        .unwrap();
    producer
        .send(Message::new("acl-topic", "signed"))
        .await
        .expect("a signed send");
    let denied = producer.send(Message::new("other-topic", "x")).await;
    assert!(
        denied.as_ref().is_err_and(|e| e
            .to_string()
            .contains("No permission for topic:other-topic")),
        "{denied:?}"
    );
    let anonymous = Producer::builder()
        .name_servers([server.namesrv.clone()])
        .group("acl-pg-anon")
        .instance_name("anonymous")
        .retries(0)
        .build()
        .unwrap();
    let refused = anonymous.send(Message::new("acl-topic", "x")).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("No accessKey is configured")),
        "{refused:?}"
    );

    let first = first_consumed(
        &server,
        "acl-cg",
        "acl-topic",
        ("rust-app-key", "rust-app-secret"),
    )
    .await;
    assert_eq!(first.as_deref(), Some(&b"signed"[..]));

    let create = |ak: &str, sk: &str| {
        admin(
            &server,
            &[
                "--accessKey",
                ak,
                "--secretKey",
                sk,
                "updateTopic",
                "-t",
                "made-by-cli",
            ],
        )
    };
    let (ok, _, err) = create("rust-app-key", "rust-app-secret");
    assert!(!ok && err.contains("Need admin permission"), "{err}");
    let (ok, out, err) = create("rust-admin-key", "rust-admin-secret");
    assert!(ok, "{out}{err}");

    // The dashboard signs with the admin account it was given: creating a topic (an admin
    // code) and sending from the UI both pass.
    let dashboard = server.dashboard.clone();
    tokio::task::spawn_blocking(move || {
        let post =
            |path: &str, body: serde_json::Value| http(&dashboard, "POST", path, Some(body), None);
        let (status, body) = post(
            "/api/topics",
            serde_json::json!({"topic": "made-in-ui", "queues": 2}),
        );
        assert_eq!(status, 201, "{body}");
        let (status, body) = post(
            "/api/topics/made-in-ui/messages",
            serde_json::json!({"body": "hi"}),
        );
        assert_eq!(status, 200, "{body}");
    })
    .await
    .unwrap();
}

/// The first body a push consumer signing with `credentials` gets from `topic` (from the
/// first offset), within 20 s.
pub(crate) async fn first_consumed(
    server: &Server,
    group: &str,
    topic: &str,
    (access_key, secret_key): (&str, &str),
) -> Option<Vec<u8>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let consumer = PushConsumer::builder()
        .name_servers([server.namesrv.clone()])
        .group(group)
        .instance_name(format!("{group}-consumer"))
        .credentials(access_key, secret_key)
        .consume_from(ConsumeFrom::FirstOffset)
        .subscribe(topic, Selector::All)
        .start(move |msgs| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .extend(msgs.into_iter().map(|m| m.body.to_vec()));
                ConsumeResult::Success
            }
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && seen.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumer.shutdown().await;
    let first = seen.lock().unwrap().first().cloned();
    first
}
