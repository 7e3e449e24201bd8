//! The gRPC front of Apache RocketMQ 5 (`apache.rocketmq.v2.MessagingService`, Apache's
//! "proxy" in local mode), in-process over the broker's transport-free operations: the
//! 5.x clients (Java 5, Go v5, Python, Node.js) talk to it on one port, TLS or plaintext.
//!
//! It owns the client-facing side only: which gRPC clients exist and their settings
//! ([`service::Clients`]), the translation of messages, statuses and receipt handles
//! ([`convert`]), and the settings merge ([`settings`]). Sending, POP, acks and renewals are
//! the broker's ([`ferromq_broker::Broker::send`], [`ferromq_broker::Broker::pop`], …).

pub mod convert;
pub mod listener;
pub mod metrics;
pub mod renew;
pub mod service;
pub mod settings;

use std::sync::Arc;

use ferromq_broker::Broker;
use ferromq_grpc_proto::v2::messaging_service_server::MessagingServiceServer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// The largest request accepted: a batch of messages at the broker's maximum size.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Serves MessagingService on `listener` until `shutdown`.
///
/// # Errors
/// The server failed outside any one connection.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    tls: TlsAcceptor,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let front = service::Front::new(broker.clone());
    let clients = front.clients.clone();
    broker.add_client_front(clients.clone());
    tokio::spawn(
        front
            .renewals
            .clone()
            .run(broker.clone(), clients, shutdown.clone()),
    );
    let service = MessagingServiceServer::new(front)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(usize::MAX);
    let incoming = listener::incoming(listener, tls, shutdown.clone());
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(60)))
        .layer(metrics::RpcMetricsLayer {
            broker: broker.clone(),
        })
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}
