//! Black-box tests of the `ferromq` binary over real sockets on 127.0.0.1.

mod acl;
mod admin;
mod catchup;
mod client;
mod cluster;
mod controller;
mod controller_mode;
mod crash;
mod crossclient;
mod dashboard;
mod delay;
mod disk;
mod examples;
mod failover;
mod groups;
mod grpc;
mod harness;
mod logs;
mod malformed;
mod metrics;
mod packaging;
mod pop;
mod protocol;
mod replication;
mod tls;
mod transaction;
