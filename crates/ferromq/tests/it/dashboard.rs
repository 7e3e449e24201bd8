//! The dashboard's JSON API over HTTP, against a live broker.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ferromq_protocol::message::encode_properties;
use serde_json::{json, Value};

use crate::harness::{call, commit_request, connect, send_request, Server};

/// One HTTP/1.1 request; returns status and parsed JSON (or the raw text as a string).
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    auth: Option<&str>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

#[tokio::test]
async fn api_serves_cluster_topics_groups_and_messages() {
    let server = Server::start("");
    let d = server.dashboard.clone();
    let broker = connect(&server.broker).await;
    let props = encode_properties([("KEYS", "order-9"), ("TAGS", "T1")]);
    let sent = call(&broker, send_request("dash", b"{\"order\":9}", &props)).await;
    let offset_id = sent.field("msgId").unwrap().to_string();
    let commit = commit_request("dash-group", "dash", 0, 0);
    assert_eq!(call(&broker, commit).await.code, 0);
    let d2 = d.clone();
    let get = move |path: &str| http(&d2, "GET", path, None, None);
    let (st, cluster) = tokio::task::spawn_blocking({
        let get = get.clone();
        move || get("/api/cluster")
    })
    .await
    .unwrap();
    assert_eq!(st, 200);
    assert_eq!(cluster["brokers"][0]["brokerName"], "broker-a");
    assert_eq!(cluster["brokers"][0]["msgPutTotal"], "1");
    let checks = tokio::task::spawn_blocking(move || {
        let (st, topics) = get("/api/topics?kind=normal");
        assert_eq!(st, 200);
        assert!(topics
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["topic"] == "dash"));
        assert!(
            !topics
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["topic"] == "TBW102"),
            "system topics filtered out"
        );
        let (st, t) = get("/api/topics/dash");
        assert_eq!(st, 200);
        assert_eq!(t["queues"][0]["maxOffset"], 1);
        let (st, found) = get("/api/messages/by-key?topic=dash&key=order-9");
        assert_eq!(st, 200);
        assert_eq!(found[0]["bodyText"], "{\"order\":9}");
        let (st, m) = get(&format!("/api/messages/by-id/{offset_id}"));
        assert_eq!(st, 200);
        assert_eq!(m["tags"], "T1");
        assert_eq!(m["groups"][0]["group"], "dash-group");
        assert_eq!(m["groups"][0]["consumed"], false);
        let (st, page) = get("/api/messages?topic=dash&begin=0");
        assert_eq!(st, 200);
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        let (st, groups) = get("/api/groups");
        assert_eq!(st, 200);
        let g = groups
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"] == "dash-group")
            .unwrap()
            .clone();
        assert_eq!(g["lag"], 1);
        let (st, _) = get("/api/delayed");
        assert_eq!(st, 200);
        let (st, _) = get("/api/transactions");
        assert_eq!(st, 200);
        let (st, spec) = get("/api/openapi.json");
        assert_eq!(st, 200);
        assert_eq!(spec["openapi"], "3.0.3");
        let (st, page) = get("/");
        assert_eq!(st, 200);
        assert!(page.as_str().unwrap().contains("FerroMQ dashboard"));
    });
    checks.await.unwrap();
}

#[tokio::test]
async fn api_changes_topics_groups_and_refuses_bad_input() {
    let server = Server::start("");
    let d = server.dashboard.clone();
    let broker = connect(&server.broker).await;
    assert_eq!(
        call(&broker, send_request("reset-me", b"x", "")).await.code,
        0
    );
    let commit = commit_request("g", "reset-me", 0, 1);
    assert_eq!(call(&broker, commit).await.code, 0);
    tokio::task::spawn_blocking(move || {
        let req = |m: &str, p: &str, b: Option<Value>| http(&d, m, p, b, None);
        let (st, _) = req(
            "POST",
            "/api/topics",
            Some(json!({"topic": "made-in-ui", "queues": 2})),
        );
        assert_eq!(st, 201);
        let (_, t) = req("GET", "/api/topics/made-in-ui", None);
        assert_eq!(t["queues"].as_array().unwrap().len(), 2);
        let (st, sent) = req(
            "POST",
            "/api/topics/made-in-ui/messages",
            Some(json!({"body": "hi", "tag": "X"})),
        );
        assert_eq!(st, 200, "{sent}");
        let (st, _) = req(
            "POST",
            "/api/groups/g/reset",
            Some(json!({"topic": "reset-me", "timestamp": 0})),
        );
        assert_eq!(st, 200);
        let (_, g) = req("GET", "/api/groups/g", None);
        assert_eq!(g["progress"][0]["consumerOffset"], 0);
        let (st, _) = req("DELETE", "/api/topics/made-in-ui", None);
        assert_eq!(st, 200);
        // Bad input: clear 4xx JSON errors.
        for (m, p, b, want) in [
            ("GET", "/api/topics/nope", None, 404),
            ("GET", "/api/topics?kind=weird", None, 400),
            (
                "POST",
                "/api/topics",
                Some(json!({"topic": "bad name!"})),
                400,
            ),
            (
                "POST",
                "/api/topics",
                Some(json!({"topic": "ok", "queues": 0})),
                400,
            ),
            ("POST", "/api/topics", Some(json!({"nope": 1})), 400),
            (
                "GET",
                "/api/messages?topic=reset-me&begin=10&end=5",
                None,
                400,
            ),
            ("GET", "/api/messages?topic=unknown-topic", None, 404),
            ("GET", "/api/messages/by-key?topic=reset-me&key=", None, 400),
            ("GET", "/api/groups/nobody", None, 404),
            (
                "POST",
                "/api/groups/g/reset",
                Some(json!({"topic": "reset-me", "timestamp": -5})),
                400,
            ),
            (
                "POST",
                "/api/groups/g/reset",
                Some(json!({"topic": "unknown-topic", "timestamp": 0})),
                404,
            ),
        ] {
            let (st, body) = req(m, p, b);
            assert_eq!(st, want, "{m} {p}: {body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{m} {p}: {body}"
            );
        }
    })
    .await
    .unwrap();
}

/// Names a namespaced client uses (`WithNamespace`: `<ns>%<name>`, `%RETRY%<ns>%<group>`) are
/// shown and addressed as the broker keeps them, as Apache's dashboard does: a namespaced topic
/// is a normal topic, its retry topic a retry topic, and both read back through `%25` in paths.
#[tokio::test]
async fn namespaced_topics_and_groups_are_listed_and_addressed_by_their_full_names() {
    let server = Server::start("");
    let d = server.dashboard.clone();
    let broker = connect(&server.broker).await;
    let props = encode_properties([("KEYS", "ns-key")]);
    for topic in ["tenant-a%orders", "%RETRY%tenant-a%billing"] {
        let sent = call(&broker, send_request(topic, b"ns-body", &props)).await;
        assert_eq!(sent.code, 0, "{topic}: {:?}", sent.remark);
    }
    let commit = commit_request("tenant-a%billing", "tenant-a%orders", 0, 0);
    assert_eq!(call(&broker, commit).await.code, 0);
    tokio::task::spawn_blocking(move || {
        let get = |path: &str| http(&d, "GET", path, None, None);
        let (st, topics) = get("/api/topics");
        assert_eq!(st, 200);
        let kind = |name: &str| {
            topics
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["topic"] == name)
                .map(|t| t["kind"].clone())
        };
        assert_eq!(kind("tenant-a%orders"), Some(json!("normal")), "{topics}");
        assert_eq!(
            kind("%RETRY%tenant-a%billing"),
            Some(json!("retry")),
            "{topics}"
        );

        let (st, t) = get("/api/topics/tenant-a%25orders");
        assert_eq!(st, 200, "{t}");
        assert_eq!(t["topic"], "tenant-a%orders");
        assert_eq!(t["queues"][0]["maxOffset"], 1);
        let (st, found) = get("/api/messages/by-key?topic=tenant-a%25orders&key=ns-key");
        assert_eq!(st, 200, "{found}");
        assert_eq!(found[0]["bodyText"], "ns-body");

        let (st, g) = get("/api/groups/tenant-a%25billing");
        assert_eq!(st, 200, "{g}");
        let progress = g["progress"].as_array().unwrap();
        assert!(
            progress
                .iter()
                .any(|p| p["topic"] == "tenant-a%orders" && p["consumerOffset"] == 0),
            "{g}"
        );
        let (st, groups) = get("/api/groups");
        assert_eq!(st, 200);
        assert!(
            groups
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["group"] == "tenant-a%billing" && g["lag"] == 1),
            "{groups}"
        );
        // Another tenant's same names are other names.
        let (st, _) = get("/api/topics/tenant-b%25orders");
        assert_eq!(st, 404);
    })
    .await
    .unwrap();
}

#[test]
fn login_protects_every_page_and_route() {
    let dir = tempfile::tempdir().unwrap();
    let (np, bp, dp) = (
        crate::harness::free_port(),
        crate::harness::free_port(),
        crate::harness::free_port(),
    );
    let _p = crate::harness::Proc::spawn(&[
        "standalone".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
        "--namesrv-listen".into(),
        format!("127.0.0.1:{np}"),
        "--broker-listen".into(),
        format!("127.0.0.1:{bp}"),
        "--dashboard-listen".into(),
        format!("127.0.0.1:{dp}"),
        "--dashboard-login".into(),
        "admin:secret".into(),
    ]);
    let addr = format!("127.0.0.1:{dp}");
    for path in ["/", "/app.js", "/api/cluster", "/api/topics"] {
        assert_eq!(http(&addr, "GET", path, None, None).0, 401, "{path}");
        assert_eq!(
            http(&addr, "GET", path, None, Some("YWRtaW46d3Jvbmc=")).0,
            401,
            "{path}"
        );
        assert_eq!(
            http(&addr, "GET", path, None, Some("YWRtaW46c2VjcmV0")).0,
            200,
            "{path}"
        );
    }
}

/// The cluster page shows each group's replication: the master with every slave, its
/// acknowledged offset, how far behind it is and whether it is in sync; the slave with its
/// master and its own distance.
#[tokio::test]
async fn cluster_page_shows_each_slave_and_how_far_behind_it_is() {
    let (_ns, ns) = crate::cluster::namesrv();
    let dir = tempfile::tempdir().unwrap();
    let ha_port = crate::harness::free_port();
    let (_master_proc, master_addr) = crate::cluster::broker(
        dir.path(),
        "master",
        &crate::cluster::master_conf("broker-d", &ns, ha_port, ""),
    );
    let (_slave_proc, slave_addr) = crate::cluster::broker(
        dir.path(),
        "slave",
        &crate::cluster::slave_conf("broker-d", &ns, ha_port, ""),
    );
    let dashboard = format!("127.0.0.1:{}", crate::harness::free_port());
    let _dashboard_proc = crate::harness::Proc::spawn(&[
        "dashboard".into(),
        "--namesrv".into(),
        ns.clone(),
        "--listen".into(),
        dashboard.clone(),
    ]);
    let master = connect(&master_addr).await;
    for i in 0..10 {
        let r = call(
            &master,
            send_request("dash-ha", format!("m{i}").as_bytes(), ""),
        )
        .await;
        assert_eq!(r.code, 0, "{:?}", r.remark);
    }
    let shown = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (st, cluster) = http(&dashboard, "GET", "/api/cluster", None, None);
            assert_eq!(st, 200);
            let by_addr = |addr: &str| {
                cluster["brokers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| b["addr"] == addr)
                    .map(|b| b["replication"].clone())
            };
            if let (Some(m), Some(s)) = (by_addr(&master_addr), by_addr(&slave_addr)) {
                let caught_up = m["slaves"][0]["behindBytes"] == 0
                    && m["logEnd"].as_u64().unwrap_or(0) > 0
                    && s["behindBytes"] == 0;
                if caught_up {
                    return (m, s);
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the dashboard never showed the slave caught up: {cluster}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    let (master_view, slave_view) = shown;
    assert_eq!(master_view["role"], "master");
    assert_eq!(master_view["slaves"].as_array().unwrap().len(), 1);
    assert_eq!(master_view["slaves"][0]["inSync"], true);
    assert_eq!(master_view["slaves"][0]["ackOffset"], master_view["logEnd"]);
    assert_eq!(slave_view["role"], "slave");
    assert_eq!(slave_view["connected"], true);
    assert_eq!(slave_view["master"], format!("127.0.0.1:{ha_port}"));
    assert_eq!(slave_view["logEnd"], master_view["logEnd"]);
}
