//! What the container image relies on: configuration from `FERROMQ_*` variables and
//! `ferromq health` as its health check.

use std::process::Command;

use crate::harness::{free_port, Proc, Server};

fn ferromq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferromq"))
}

/// `ferromq standalone` on free ports with `vars` in its environment and `conf` as its
/// broker.conf.
fn standalone_with_env(dir: &std::path::Path, conf: &str, vars: &[(&str, &str)]) -> Command {
    let conf_path = dir.join("broker.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut command = ferromq();
    command
        .args(["standalone", "--no-dashboard", "--no-grpc"])
        .args(["--namesrv-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--broker-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("-c")
        .arg(&conf_path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .envs(vars.iter().copied());
    command
}

#[test]
fn configuration_keys_come_from_ferromq_variables_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::spawn_command(standalone_with_env(
        dir.path(),
        "brokerName=from-the-file\ndefaultTopicQueueNums=8\n",
        &[
            // both spellings, and a variable beating the file
            ("FERROMQ_BROKER_NAME", "from-the-environment"),
            ("FERROMQ_brokerIP1", "127.0.0.2"),
            // a near miss of a key is reported; an unrelated FERROMQ_ variable is not
            ("FERROMQ_BROKER_CLUSTER_NAMEE", "typo"),
            ("FERROMQ_UNRELATED", "for some other program"),
        ],
    ));
    let logs = proc.logs();
    let ready = logs
        .lines()
        .find(|l| l.starts_with("FerroMQ is ready"))
        .unwrap();
    assert!(
        ready.contains("broker 127.0.0.2:"),
        "brokerIP1 from the environment is the advertised address: {ready}"
    );
    assert!(
        logs.contains("FERROMQ_BROKER_CLUSTER_NAMEE matches no configuration key")
            && logs.contains("did you mean brokerClusterName"),
        "{logs}"
    );
    assert!(!logs.contains("FERROMQ_UNRELATED"), "{logs}");
    // 127.0.0.2 is as unreachable from other machines as 127.0.0.1
    assert!(logs.contains("FERROMQ_BROKER_IP1"), "{logs}");

    let namesrv = logs
        .split("name server ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .to_string();
    let out = ferromq()
        .args(["admin", "clusterList", "-n", &namesrv, "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("from-the-environment") && !text.contains("from-the-file"),
        "{text}"
    );
}

#[test]
fn a_bad_value_in_a_variable_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = standalone_with_env(dir.path(), "", &[("FERROMQ_FLUSH_DISK_TYPE", "SOMETIMES")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("flushDiskType") && err.contains("FERROMQ_"),
        "{err}"
    );
}

#[test]
fn a_name_server_takes_its_port_from_the_environment() {
    let port = free_port();
    let home = tempfile::tempdir().unwrap();
    let mut command = ferromq();
    command
        .arg("namesrv")
        .env("FERROMQ_LISTEN_PORT", port.to_string())
        .env("HOME", home.path());
    let proc = Proc::spawn_command(command);
    assert!(proc.logs().contains(&format!(":{port}")), "{}", proc.logs());
}

#[test]
fn health_answers_for_live_servers_and_names_what_is_not() {
    let server = Server::start("");
    let out = ferromq()
        .args(["health", "--namesrv", &server.namesrv])
        .args(["--broker", &server.broker])
        .args(["--http", &server.dashboard])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(": ok").count(), 3, "{text}");

    // nothing listening
    let closed = format!("127.0.0.1:{}", free_port());
    let out = ferromq()
        .args(["health", "--namesrv", &server.namesrv, "--broker", &closed])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("broker {closed}")) && !err.contains(&server.namesrv),
        "{err}"
    );

    // a port that accepts and never answers: stuck is not healthy
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let out = ferromq()
        .args(["health", "--broker", &silent_addr, "--timeout", "500ms"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&silent_addr), "{err}");
    drop(silent);
}
