//! Logs as an operator reads them: a refused request names the client, its group and
//! topic; `--log-format json` gives one JSON object per line; a client repeating a bad
//! request does not flood the log.

use crate::harness::{call, connect, send_request, Server};

#[tokio::test]
async fn a_refused_request_is_logged_once_with_its_client_group_and_topic_as_json() {
    let server = Server::start_with("", &["--log-format", "json"]);
    let conn = connect(&server.broker).await;
    for _ in 0..5 {
        // A topic name Apache refuses (characters outside [%|a-zA-Z0-9_-]).
        let answer = call(&conn, send_request("no spaces allowed", b"x", "")).await;
        assert_ne!(answer.code, 0);
    }
    // The harness reads the process's output on a thread of its own: wait for the line.
    crate::harness::eventually("the refusal logged", || {
        server.logs().contains("request refused")
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = server.logs();
    let refusals: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request refused")
        .collect();
    assert_eq!(
        refusals.len(),
        1,
        "five refusals, one line within 10 s:\n{logs}"
    );
    let line = &refusals[0];
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["group"], "PG", "{line}");
    assert_eq!(line["topic"], "no spaces allowed", "{line}");
    assert_eq!(line["request"], "SEND_MESSAGE", "{line}");
    assert!(
        line["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    assert!(!line["remark"].as_str().unwrap().is_empty(), "{line}");
    // every line the process wrote to stderr is JSON
    for l in logs.lines().filter(|l| !l.starts_with("FerroMQ is ready")) {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "not JSON: {l}"
        );
    }
}

/// A client that stops reading its answers (a stuck consumer) is named in the log once,
/// and the broker keeps serving everyone else.
#[tokio::test]
async fn a_client_that_stops_reading_is_named_once_and_others_are_served() {
    use std::io::Write;

    use crate::harness::{eventually, pull_request};
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    let big = vec![b'x'; 1 << 20];
    assert_eq!(call(&conn, send_request("big-t", &big, "")).await.code, 0);
    // 64 pulls of the 1 MiB message, whose 64 MiB of answers are never read.
    let mut stuck = std::net::TcpStream::connect(&server.broker).unwrap();
    let me = stuck.local_addr().unwrap().to_string();
    let mut frames = bytes::BytesMut::new();
    for i in 0..64 {
        let mut pull = pull_request("big-t", 0, 0, 0);
        pull.opaque = i;
        pull.encode(&mut frames);
    }
    stuck.write_all(&frames).unwrap();
    eventually("the stalled client in the log", || {
        server
            .logs()
            .lines()
            .any(|l| l.contains("client is not reading its answers") && l.contains(&me))
    });
    assert_eq!(
        call(&conn, send_request("big-t", b"small", "")).await.code,
        0,
        "others are served"
    );
    assert_eq!(
        server
            .logs()
            .matches("client is not reading its answers")
            .count(),
        1
    );
    drop(stuck);
}
