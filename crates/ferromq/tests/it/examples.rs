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
