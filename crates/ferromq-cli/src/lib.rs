//! `ferromq admin …`: the mqadmin commands people use, with Apache's names and flags, so a
//! runbook written for mqadmin works with either. It is a plain client built on
//! [`ferromq_client::admin::AdminClient`]: brokers are found through the name server, so
//! it works against FerroMQ and Apache RocketMQ alike (FerroMQ-only commands say so).
//! Tables by default, `--json` for scripts; errors are one line and a non-zero exit.

mod cmd;
mod ctx;
mod remote;
mod table;

pub use cmd::{run, AdminArgs, AdminCommand};
