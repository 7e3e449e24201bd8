//! Apache RocketMQ's gRPC API, `apache.rocketmq.v2` (the protos of rocketmq-apis, vendored
//! unmodified under `proto/` at the commit its README names), as prost messages and tonic
//! services. Generated at build time; nothing here is written by hand.

#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v2 {
    tonic::include_proto!("apache.rocketmq.v2");
}

pub use prost_types;
