//! Every example of the Rust client runs against a FerroMQ started here and succeeds.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::Server;

/// The example's binary, built if this test run did not build it.
fn example(name: &str) -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ferromq"));
    let path = bin.parent().unwrap().join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "ferromq-client", "--examples"])
            .status()
            .unwrap();
        assert!(status.success(), "building the examples failed");
    }
    path
}

fn run(server: &Server, name: &str) -> String {
    let out = Command::new(example(name))
        .env("NAMESRV_ADDR", &server.namesrv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn examples_mirroring_the_tutorial_run_successfully() {
    let server = Server::start("transactionCheckInterval=500\ntransactionTimeOut=1000\n");
    assert!(run(&server, "simple_producer").contains("发送成功"));
    assert!(run(&server, "simple_consumer").contains("this is imooc1"));
    for name in [
        "batch",
        "ordered",
        "broadcast",
        "pull",
        "transaction",
        "delay",
    ] {
        run(&server, name);
    }
}

#[test]
fn completions_and_the_manual_page_come_from_the_cli_definitions() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ferromq"))
            .args(args)
            .output()
            .unwrap()
    };
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success());
    let text = String::from_utf8_lossy(&bash.stdout);
    assert!(
        text.contains("_ferromq()")
            && text.contains("standalone")
            && text.contains("--grpc-listen"),
        "{text}"
    );
    let zsh = run(&["completions", "zsh"]);
    assert!(String::from_utf8_lossy(&zsh.stdout).contains("#compdef ferromq"));
    let man = run(&["man"]);
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.status.success() && page.contains(".TH ferromq 1") && page.contains("standalone"),
        "{page}"
    );
    let bad = run(&["completions", "cmd.exe"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cmd.exe"));
}
