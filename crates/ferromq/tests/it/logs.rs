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
