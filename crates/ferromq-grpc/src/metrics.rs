//! The gRPC front's calls in `rocketmq_rpc_latency`, with `protocol_type="grpc"`: a tower
//! layer times each call from its request to the end of its answer (unary calls: the
//! answer; ReceiveMessage: its long poll; Telemetry: the client's session) and labels it
//! with the method and the gRPC status in the trailers. Apache's local-mode proxy records
//! none of these; the statuses inside the answers (MESSAGE_NOT_FOUND, …) are not labels.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use ferromq_broker::Broker;
use http_body::{Body, Frame, SizeHint};
use tonic::codegen::http;

/// Wraps the gRPC routes.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    pub broker: Arc<Broker>,
}

impl<S> tower_layer::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> RpcMetrics<S> {
        RpcMetrics {
            inner,
            broker: self.broker.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    broker: Arc<Broker>,
}

/// The label of a MessagingService method, from its path; unknown paths share one.
fn method_of(path: &str) -> &'static str {
    match path.rsplit('/').next().unwrap_or("") {
        "QueryRoute" => "query_route",
        "Heartbeat" => "heartbeat",
        "SendMessage" => "send_message",
        "QueryAssignment" => "query_assignment",
        "ReceiveMessage" => "receive_message",
        "AckMessage" => "ack_message",
        "ForwardMessageToDeadLetterQueue" => "forward_message_to_dead_letter_queue",
        "PullMessage" => "pull_message",
        "UpdateOffset" => "update_offset",
        "GetOffset" => "get_offset",
        "QueryOffset" => "query_offset",
        "EndTransaction" => "end_transaction",
        "Telemetry" => "telemetry",
        "NotifyClientTermination" => "notify_client_termination",
        "ChangeInvisibleDuration" => "change_invisible_duration",
        "RecallMessage" => "recall_message",
        "SyncLiteSubscription" => "sync_lite_subscription",
        _ => "unknown",
    }
}

/// A gRPC status number as a label.
fn status_name(code: Option<&http::HeaderValue>) -> &'static str {
    let Some(code) = code else {
        return "ok";
    };
    match code.to_str().ok().and_then(|v| v.parse::<i32>().ok()) {
        Some(0) => "ok",
        Some(1) => "cancelled",
        Some(3) => "invalid_argument",
        Some(4) => "deadline_exceeded",
        Some(5) => "not_found",
        Some(7) => "permission_denied",
        Some(8) => "resource_exhausted",
        Some(9) => "failed_precondition",
        Some(12) => "unimplemented",
        Some(13) => "internal",
        Some(14) => "unavailable",
        Some(16) => "unauthenticated",
        _ => "unknown",
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for RpcMetrics<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let method = method_of(req.uri().path());
        let started = Instant::now();
        let broker = self.broker.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let resp = answer.await?;
            // A trailers-only answer (an error before any message) has its status here.
            let status = resp
                .headers()
                .get("grpc-status")
                .map(|v| status_name(Some(v)));
            Ok(resp.map(|inner| MeteredBody {
                inner,
                method,
                started,
                status,
                broker: Some(broker),
            }))
        })
    }
}

/// An answer's body that records the call when it ends (or is dropped unfinished:
/// `cancelled`).
pub struct MeteredBody<B> {
    inner: B,
    method: &'static str,
    started: Instant,
    status: Option<&'static str>,
    /// Taken when the call is recorded.
    broker: Option<Arc<Broker>>,
}

impl<B> MeteredBody<B> {
    fn record(&mut self, status: &'static str) {
        if let Some(broker) = self.broker.take() {
            broker.metrics().front_rpc(
                "grpc",
                self.method,
                status,
                self.method == "receive_message",
                self.started.elapsed().as_secs_f64() * 1000.0,
            );
        }
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        self.record(self.status.unwrap_or("cancelled"));
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.status = Some(status_name(trailers.get("grpc-status")));
                }
            }
            Poll::Ready(Some(Err(_))) => this.record("internal"),
            Poll::Ready(None) => this.record(this.status.unwrap_or("ok")),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_statuses_get_their_labels() {
        assert_eq!(
            method_of("/apache.rocketmq.v2.MessagingService/SendMessage"),
            "send_message"
        );
        assert_eq!(method_of("/x.Y/Nonsense"), "unknown");
        assert_eq!(status_name(None), "ok");
        assert_eq!(
            status_name(Some(&http::HeaderValue::from_static("16"))),
            "unauthenticated"
        );
        assert_eq!(
            status_name(Some(&http::HeaderValue::from_static("x"))),
            "unknown"
        );
    }
}
