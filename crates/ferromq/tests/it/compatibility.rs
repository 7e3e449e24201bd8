//! Every request code of Apache RocketMQ 5.5 (`apache_request_codes.txt`, read from
//! `RequestCode` in rocketmq-remoting-5.5.0.jar, with 5.5.1's 5002 and 5003) sent with an empty header to a name server, a
//! broker and a controller: each is served by one of them, sent by the broker to clients,
//! refused with a reason, or owned by an open issue. `docs/compatibility.md` is this table;
//! the test fails when the servers' answers and the file part ways
//! (`FERROMQ_WRITE_COMPATIBILITY=1` rewrites it), or when a code answers a bare
//! "request type N not supported" without a row saying why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferromq_protocol::RemotingCommand;

use crate::harness::{connect, free_port, Proc, Server};

const NOT_SUPPORTED: i32 = 3;

/// Codes the servers do not answer and that are not refused for good: why.
fn note(code: i32) -> Option<&'static str> {
    Some(match code {
        39 | 40 | 220 | 307 | 309 | 326 => "sent by the broker to clients",
        221 => "sent by brokers to clients for 223, which FerroMQ refuses (deprecated in Apache)",
        _ => return None,
    })
}

/// Tests that use a code through a client's API rather than by name or number.
fn used_by(code: i32) -> &'static [&'static str] {
    const EVERY_CLIENT: &[&str] = &["every client suite (interop/go, interop/java, it/client.rs)"];
    match code {
        14 | 15 | 34 | 35 | 38 | 41 | 42 | 36 => EVERY_CLIENT,
        310 | 320 => &["interop/java", "it/client.rs"],
        200050 | 200051 | 200053 | 200054 | 200151 => {
            &["interop/apache-tools RemotingPopConsumerTest (the Java 5 client over remoting)"]
        }
        324 => &["interop/go/request_reply_test.go"],
        325 => &["interop/java/…/RequestReplyTest.java", "it/client.rs"],
        326 => &[
            "interop/go/request_reply_test.go",
            "interop/java/…/RequestReplyTest.java",
        ],
        26 => &[
            "interop/apache-tools MqAdminTest#getBrokerConfig (mqadmin getBrokerConfig)",
            "AdminApiTest#getAndUpdateBrokerConfig",
        ],
        29 => &["dashboard-e2e/apache-dashboard.test.mjs (Apache's dashboard finds messages by time)"],
        31 => &["interop/apache-tools MqAdminTest#printMsg, #consumeMessage (mqadmin printMsg, consumeMessage)"],
        32 => &["interop/apache-tools AdminApiTest#sendThenExamineTopicStats (earliestMsgStoreTime)"],
        43 | 45 => &[
            "it/cluster.rs (a slave's metadata copy)",
            "interop/apache-tools HaInteropTest (an Apache slave copying a FerroMQ master)",
        ],
        60 | 61 | 402 => &["interop/apache-tools HaInteropTest (an Apache slave copying a FerroMQ master)"],
        104 => &["it/cluster.rs broker_registers_with_every_name_server_and_unregisters_on_shutdown"],
        206 => &[
            "interop/apache-tools AdminApiTest#fetchAllTopicList, MqAdminTest#topicList",
            "interop/go/admin_test.go",
        ],
        207 => &["interop/apache-tools AdminApiTest#subscriptionGroupCreateExamineDelete, MqAdminTest#deleteSubGroup"],
        219 => &["interop/apache-tools AdminApiTest#kvConfig (getKVListByNamespace)"],
        300 => &["interop/apache-tools MqAdminTest (topicList -c, queryMsgById)"],
        305 => &["interop/apache-tools AdminApiTest#userTopicConfig (getUserTopicConfig)"],
        311..=313 => &["it/admin.rs unit_topic_lists_follow_the_topics_flags"],
        317 => &["interop/apache-tools MqAdminTest (mqadmin brokerConsumeStats)"],
        318 | 352 => &["it/admin.rs (ferromq admin updateNamesrvConfig, getConsumerConfig)"],
        343 => &["interop/apache-tools AdminApiTest#consumeThenExamineConsumeStatsAndConnection (queryTopicsByConsumer)"],
        400 | 401 => &["interop/apache-tools RemotingPopConsumerTest"],
        906 | 907 => &["it/controller_mode.rs (a controller-mode slave; ferromq admin haStatus)"],
        1007 => &["interop/go/controller_partition_test.go (ferromq admin getBrokerEpoch)"],
        1008 => &["it/controller.rs (the controller notifies a stand-in broker)", "it/controller_mode.rs"],
        3001..=3010 => &[
            "it/acl2.rs",
            "interop/apache-tools Acl2Test (mqadmin and the admin API, against FerroMQ and Apache 5.5)",
        ],
        _ => &[],
    }
}

/// The parts of FerroMQ that send requests themselves, and their sources (the admin tool's
/// and dashboard's suites run them: it/admin.rs, dashboard-e2e; the broker's go to its name
/// server and controller).
const SENDERS: [(&str, &[&str]); 4] = [
    (
        "`ferromq admin`",
        &[
            "crates/ferromq-cli/src",
            "crates/ferromq-client/src/admin.rs",
        ],
    ),
    ("the dashboard", &["crates/ferromq-dashboard/src"]),
    (
        "FerroMQ's broker",
        &["crates/ferromq-broker/src", "crates/ferromq-ha/src"],
    ),
    ("FerroMQ's controller", &["crates/ferromq-controller/src"]),
];

/// Which of the [`SENDERS`] build a request with the code: `request(request::NAME`
/// and the like, not a match arm serving it.
fn senders(sources: &[(&'static str, Vec<(PathBuf, String)>)], name: &str) -> Vec<&'static str> {
    // Unit tests inside the sources build requests too; they send nothing.
    let builds = |text: &str| {
        let text = text.split("#[cfg(test)]").next().unwrap_or(text);
        ["request::", "code::", "request::request::"]
            .iter()
            .any(|m| text.contains(&format!("request({m}{name}")))
    };
    sources
        .iter()
        .filter(|(_, files)| files.iter().any(|(_, text)| builds(text)))
        .map(|(who, _)| *who)
        .collect()
}

#[derive(Debug)]
struct Answer {
    code: i32,
    remark: String,
}

async fn ask(addr: &str, code: i32) -> Answer {
    let conn = connect(addr).await;
    match conn
        .invoke(RemotingCommand::request(code), Duration::from_secs(10))
        .await
    {
        Ok(r) => Answer {
            code: r.code,
            remark: r.remark.unwrap_or_default(),
        },
        Err(e) => Answer {
            code: i32::MIN,
            remark: format!("no answer: {e}"),
        },
    }
}

/// Test files (under the repository) that name the code, or send it by number.
fn mentions(root: &Path, files: &[(PathBuf, String)], code: i32, name: &str) -> Vec<String> {
    let by_number = [
        format!("request({code})"),
        format!("request({code},"),
        format!("Addr, {code},"),
        format!(".call({code}"),
    ];
    let mut out: Vec<String> = files
        .iter()
        .filter(|(_, text)| {
            text.contains(&format!("request::{name}"))
                || text.contains(&format!("RequestCode.{name}"))
                || text.contains(&format!("{name} ({code})"))
                || by_number.iter().any(|n| text.contains(n.as_str()))
        })
        .map(|(path, _)| {
            path.strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string()
                .replace("crates/ferromq/tests/", "")
        })
        .collect();
    out.extend(used_by(code).iter().map(|s| s.to_string()));
    out.sort();
    out.dedup();
    out
}

/// The text of every source file under `paths` (files or directories, from `root`),
/// skipping build output, dependencies and this test.
fn read_sources(root: &Path, paths: &[&str]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut pending: Vec<PathBuf> = paths.iter().map(|p| root.join(p)).collect();
    while let Some(path) = pending.pop() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "node_modules" | ".venv") {
                let entries = std::fs::read_dir(&path).into_iter().flatten();
                pending.extend(entries.filter_map(Result::ok).map(|e| e.path()));
            }
        } else if name != "compatibility.rs"
            && [".rs", ".go", ".java", ".py", ".js"]
                .iter()
                .any(|e| name.ends_with(e))
        {
            if let Ok(text) = std::fs::read_to_string(&path) {
                out.push((path, text));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_apache_request_code_is_served_refused_or_owned() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    let codes: Vec<(i32, String)> = include_str!("apache_request_codes.txt")
        .lines()
        .filter_map(|l| {
            let (n, name) = l.split_once(' ')?;
            Some((n.parse().ok()?, name.trim().to_string()))
        })
        .collect();
    assert!(codes.len() > 150, "the code list is cut short");

    let server = Server::start("");
    let dir = tempfile::tempdir().unwrap();
    let ctl = format!("127.0.0.1:{}", free_port());
    let conf = dir.path().join("controller.conf");
    std::fs::write(
        &conf,
        format!(
            "controllerDLegerPeers=n0-{ctl}\ncontrollerDLegerSelfId=n0\ncontrollerStorePath={}\n",
            dir.path().join("ctl").display()
        ),
    )
    .unwrap();
    let _controller = Proc::spawn(&["controller".into(), "-c".into(), conf.display().to_string()]);

    let files = read_sources(&root, &["crates/ferromq/tests", "interop"]);
    let sources: Vec<(&'static str, Vec<(PathBuf, String)>)> = SENDERS
        .iter()
        .map(|(who, paths)| (*who, read_sources(&root, paths)))
        .collect();
    let mut rows = Vec::new();
    let mut bare = Vec::new();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (code, name) in &codes {
        let answers = [
            ("name server", ask(&server.namesrv, *code).await),
            ("broker", ask(&server.broker, *code).await),
            ("controller", ask(&ctl, *code).await),
        ];
        let by: Vec<&str> = answers
            .iter()
            .filter(|(_, a)| a.code != NOT_SUPPORTED && a.code != i32::MIN)
            .map(|(who, _)| *who)
            .collect();
        let refusal = answers.iter().find_map(|(_, a)| {
            a.remark
                .split_once("not supported by FerroMQ: ")
                .map(|(_, why)| why.to_string())
        });
        let (kind, detail) = if !by.is_empty() {
            let tests = mentions(&root, &files, *code, name);
            let tests = if tests.is_empty() {
                "none names it".to_string()
            } else {
                tests.join(", ")
            };
            let tools = senders(&sources, name);
            let tools = if tools.is_empty() {
                String::new()
            } else {
                format!("; sent by {}", tools.join(" and "))
            };
            (
                "served",
                format!("by the {}; tests: {tests}{tools}", by.join(" and ")),
            )
        } else if let Some(why) = refusal {
            ("refused", why)
        } else if let Some(why) = note(*code) {
            (
                if why.starts_with("sent by") {
                    "to clients"
                } else {
                    "open"
                },
                why.to_string(),
            )
        } else {
            bare.push(format!("{code} {name}"));
            (
                "unexplained",
                "answers \"request type N not supported\"".to_string(),
            )
        };
        *by_kind.entry(kind).or_default() += 1;
        rows.push(format!("| {code} | `{name}` | {kind} | {detail} |"));
    }
    // Every probe above had an empty header: the servers must all still be there.
    assert!(
        ask(&server.broker, 30).await.code != i32::MIN,
        "the broker stopped answering"
    );
    assert!(
        ask(&server.namesrv, 106).await.code == 0,
        "the name server stopped answering"
    );

    let summary = by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let table = format!(
        "# Request codes: FerroMQ against Apache RocketMQ 5.5\n\n\
         Generated by `cargo test -p ferromq --test it compatibility` (`crates/ferromq/tests/it/compatibility.rs`): \
         every code of Apache 5.5's `RequestCode` ({} codes) is sent with an empty header to FerroMQ's name \
         server, broker and controller. *served*: one of them answers it (the tests listed name the code or \
         use it through a client); *to clients*: the broker sends it to clients; *refused*: answered \
         \"not supported by FerroMQ\" with the reason shown; *open*: not served yet, and the issue that owns it.\n\n\
         {summary}.\n\n\
         | code | name | status | detail |\n|---|---|---|---|\n{}\n",
        codes.len(),
        rows.join("\n")
    );
    let path = root.join("docs/compatibility.md");
    if std::env::var_os("FERROMQ_WRITE_COMPATIBILITY").is_some() {
        std::fs::write(&path, &table).unwrap();
    }
    assert!(
        bare.is_empty(),
        "codes answered \"request type N not supported\" without a row saying why: {bare:?}"
    );
    // The statuses must match; the details (which tests name a code) may lag.
    let statuses = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                let code = cells.first()?.strip_prefix("| ")?;
                code.parse::<i32>().ok()?;
                Some((code.to_string(), cells.get(2)?.to_string()))
            })
            .collect()
    };
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        statuses(&written) == statuses(&table),
        "docs/compatibility.md is not what the servers answer now; rerun with \
         FERROMQ_WRITE_COMPATIBILITY=1 and commit it. Now:\n{table}"
    );
}
