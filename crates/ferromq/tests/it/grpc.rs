//! The gRPC front under input no official client sends: bytes that are not protobuf, enum
//! values from the future, requests past the size limit, streams abandoned mid-way, 10,000
//! idle Telemetry streams, and calls before a client's settings. Each gets an answer (or a
//! gRPC error) and the front keeps serving others. Also: gRPC clients are listed beside the
//! remoting ones (what `consumerConnection` and the dashboards show).

use std::time::Duration;

use bytes::{Buf, BufMut};
use ferromq_grpc_proto::v2::{
    self as pb, messaging_service_client::MessagingServiceClient, telemetry_command, Code,
};
use ferromq_protocol::RemotingCommand;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;

use crate::harness::*;

/// Sends and receives raw bytes as gRPC messages.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

pub(crate) fn start() -> (Server, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with("", &["--grpc-listen", &listen]);
    (server, format!("http://{listen}"))
}

pub(crate) async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub(crate) fn with_client_id<T>(msg: T, id: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("x-mq-client-id", id.parse().unwrap());
    req.metadata_mut()
        .insert("x-mq-language", "PYTHON".parse().unwrap());
    req.metadata_mut()
        .insert("x-mq-client-version", "5.1.2".parse().unwrap());
    req
}

pub(crate) fn seconds(seconds: i64) -> Option<ferromq_grpc_proto::prost_types::Duration> {
    Some(ferromq_grpc_proto::prost_types::Duration { seconds, nanos: 0 })
}

/// A receive of every queue of `topic` for `group`, hiding what it gets this long.
pub(crate) fn receive_request(
    group: &str,
    topic: &str,
    invisible_s: Option<i64>,
) -> pb::ReceiveMessageRequest {
    pb::ReceiveMessageRequest {
        group: resource(group),
        message_queue: Some(pb::MessageQueue {
            topic: resource(topic),
            id: -1,
            ..Default::default()
        }),
        invisible_duration: invisible_s.and_then(seconds),
        ..Default::default()
    }
}

pub(crate) fn resource(name: &str) -> Option<pb::Resource> {
    Some(pb::Resource {
        resource_namespace: String::new(),
        name: name.to_string(),
    })
}

async fn raw_call(
    channel: Channel,
    method: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

/// The front still answers a well-formed QueryRoute.
pub(crate) async fn still_serving(url: &str) {
    let mut client = MessagingServiceClient::new(channel(url).await);
    let resp = client
        .query_route(pb::QueryRouteRequest {
            topic: resource("TBW102"),
            endpoints: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.status.unwrap().code, Code::Ok as i32);
    assert_eq!(resp.message_queues.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_grpc_input_is_refused_and_the_front_keeps_serving() {
    let (_server, url) = start();
    let ch = channel(&url).await;
    // Not protobuf at all: a gRPC INTERNAL/INVALID error, not a dead connection.
    let garbage = raw_call(
        ch.clone(),
        "/apache.rocketmq.v2.MessagingService/SendMessage",
        vec![0xff; 64],
    )
    .await;
    assert!(garbage.is_err(), "{garbage:?}");
    // An unknown method.
    let unknown = raw_call(
        ch.clone(),
        "/apache.rocketmq.v2.MessagingService/NoSuchRpc",
        vec![],
    )
    .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::Unimplemented);
    // Past the 16 MiB request limit.
    let huge = raw_call(
        ch.clone(),
        "/apache.rocketmq.v2.MessagingService/SendMessage",
        vec![0; 17 << 20],
    )
    .await;
    assert!(huge.is_err());
    let mut client = MessagingServiceClient::new(ch.clone());
    // Enum values no version defines, and no message at all.
    let odd = pb::Message {
        topic: resource("TBW102"),
        system_properties: Some(pb::SystemProperties {
            message_id: "01ODD".into(),
            message_type: 77,
            body_encoding: 9,
            ..Default::default()
        }),
        body: b"x".to_vec(),
        ..Default::default()
    };
    let resp = client
        .send_message(with_client_id(
            pb::SendMessageRequest {
                messages: vec![odd],
            },
            "odd",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.status.is_some());
    let empty = client
        .send_message(with_client_id(
            pb::SendMessageRequest { messages: vec![] },
            "odd",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(empty.status.unwrap().code, Code::MessageCorrupted as i32);
    // A receipt handle that is not one.
    let ack = client
        .ack_message(with_client_id(
            pb::AckMessageRequest {
                group: resource("g"),
                topic: resource("TBW102"),
                entries: vec![pb::AckMessageEntry {
                    message_id: "x".into(),
                    receipt_handle: "garbage".into(),
                    lite_topic: None,
                }],
            },
            "odd",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ack.entries[0].status.as_ref().unwrap().code,
        Code::InvalidReceiptHandle as i32
    );
    // A receive before any settings: a clear status, not an internal error.
    let mut stream = client
        .receive_message(with_client_id(
            receive_request("g", "TBW102", Some(30)),
            "no-settings",
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    match first.content {
        Some(pb::receive_message_response::Content::Status(s)) => {
            assert_eq!(s.code, Code::UnrecognizedClientType as i32, "{}", s.message)
        }
        other => panic!("expected a status first: {other:?}"),
    }
    let heartbeat = client
        .heartbeat(with_client_id(
            pb::HeartbeatRequest::default(),
            "no-settings",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        heartbeat.status.unwrap().code,
        Code::UnrecognizedClientType as i32
    );
    still_serving(&url).await;
}

/// A simple consumer's settings, as the clients send them first on Telemetry.
pub(crate) fn consumer_settings(group: &str, topic: &str) -> pb::TelemetryCommand {
    pb::TelemetryCommand {
        status: None,
        command: Some(telemetry_command::Command::Settings(pb::Settings {
            client_type: Some(pb::ClientType::SimpleConsumer as i32),
            pub_sub: Some(pb::settings::PubSub::Subscription(pb::Subscription {
                group: resource(group),
                subscriptions: vec![pb::SubscriptionEntry {
                    topic: resource(topic),
                    expression: Some(pb::FilterExpression {
                        r#type: pb::FilterType::Tag as i32,
                        expression: "a||b".into(),
                    }),
                }],
                ..Default::default()
            })),
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_and_idle_streams_leave_the_front_serving_and_clients_are_listed() {
    let (server, url) = start();
    let ch = channel(&url).await;
    let mut client = MessagingServiceClient::new(ch.clone());
    // Settings, then the merged answer: a consumer gets a batch size, a long-polling
    // timeout and a backoff policy.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(consumer_settings("grpc-g", "TBW102"))
        .await
        .unwrap();
    let mut replies = client
        .telemetry(with_client_id(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            "listed-client",
        ))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    assert_eq!(reply.status.unwrap().code, Code::Ok as i32);
    let Some(telemetry_command::Command::Settings(merged)) = reply.command else {
        panic!("settings expected");
    };
    let Some(pb::settings::PubSub::Subscription(sub)) = merged.pub_sub else {
        panic!("subscription expected");
    };
    assert_eq!(sub.receive_batch_size, Some(32));
    assert!(sub.long_polling_timeout.is_some());
    assert_eq!(merged.backoff_policy.unwrap().max_attempts, 17);
    assert_eq!(merged.metric.map(|m| m.on), Some(false));
    // The gRPC consumer is listed by the remoting admin request mqadmin and both dashboards use.
    let conn = connect(&server.broker).await;
    let list = call(
        &conn,
        RemotingCommand::request(203).with_field("consumerGroup", "grpc-g"),
    )
    .await;
    assert_eq!(list.code, 0, "{:?}", list.remark);
    let body: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let c = &body["connectionSet"][0];
    assert_eq!(c["clientId"], "listed-client");
    assert_eq!(c["language"], "PYTHON");
    assert_eq!(body["consumeType"], "CONSUME_ACTIVELY");
    assert_eq!(body["subscriptionTable"]["TBW102"]["subString"], "a||b");
    // What an operator sees: `ferromq admin consumerConnection` and the dashboard's group page.
    let (ok, out, err) = crate::admin::admin(&server, &["consumerConnection", "-g", "grpc-g"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("listed-client") && out.contains("PYTHON"),
        "{out}"
    );
    let (code, page) =
        crate::dashboard::http(&server.dashboard, "GET", "/api/groups/grpc-g", None, None);
    assert_eq!(code, 200, "{page}");
    assert_eq!(
        page["connections"]["connectionSet"][0]["clientId"],
        "listed-client"
    );
    // GET_CONSUMER_RUNNING_INFO reaches the client over its Telemetry stream
    // (PrintThreadStackTraceCommand), and its answer comes back as `jstack`.
    let answering = {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(cmd)) = replies.message().await {
                let answer = match cmd.command {
                    Some(telemetry_command::Command::PrintThreadStackTraceCommand(c)) => {
                        pb::TelemetryCommand {
                            status: Some(pb::Status {
                                code: Code::Ok as i32,
                                message: "OK".into(),
                            }),
                            command: Some(telemetry_command::Command::ThreadStackTrace(
                                pb::ThreadStackTrace {
                                    nonce: c.nonce,
                                    thread_stack_trace: Some("\"main\" #1 RUNNABLE".into()),
                                },
                            )),
                        }
                    }
                    // The listener "fails" the message it is asked to verify.
                    Some(telemetry_command::Command::VerifyMessageCommand(c)) => {
                        assert_eq!(c.message.unwrap().body, b"verify me");
                        pb::TelemetryCommand {
                            status: Some(pb::Status {
                                code: Code::FailedToConsumeMessage as i32,
                                message: "listener said later".into(),
                            }),
                            command: Some(telemetry_command::Command::VerifyMessageResult(
                                pb::VerifyMessageResult { nonce: c.nonce },
                            )),
                        }
                    }
                    _ => continue,
                };
                let _ = tx.send(answer).await;
            }
        })
    };
    let running = call(
        &conn,
        RemotingCommand::request(307)
            .with_field("consumerGroup", "grpc-g")
            .with_field("clientId", "listed-client")
            .with_field("jstackEnable", true),
    )
    .await;
    assert_eq!(running.code, 0, "{:?}", running.remark);
    let info: serde_json::Value = serde_json::from_slice(&running.body).unwrap();
    assert_eq!(info["jstack"], "\"main\" #1 RUNNABLE");
    // CONSUME_MESSAGE_DIRECTLY reaches it as a VerifyMessageCommand.
    let sent = call(&conn, send_request("verify-t", b"verify me", "")).await;
    assert_eq!(sent.code, 0);
    let direct = call(
        &conn,
        RemotingCommand::request(309)
            .with_field("consumerGroup", "grpc-g")
            .with_field("clientId", "listed-client")
            .with_field("msgId", sent.field("msgId").unwrap())
            .with_field("topic", "verify-t"),
    )
    .await;
    assert_eq!(direct.code, 0, "{:?}", direct.remark);
    let result: serde_json::Value = serde_json::from_slice(&direct.body).unwrap();
    assert_eq!(result["consumeResult"], "CR_LATER");
    // A receive left waiting (a long poll), then dropped mid-way.
    {
        let mut c = MessagingServiceClient::new(ch.clone());
        let pending = tokio::spawn(async move {
            c.receive_message(with_client_id(
                pb::ReceiveMessageRequest {
                    long_polling_timeout: seconds(20),
                    batch_size: 1,
                    ..receive_request("grpc-g", "TBW102", Some(30))
                },
                "listed-client",
            ))
            .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        pending.abort();
    }
    // 10,000 Telemetry streams that never send anything, over 10 connections.
    let mut idle = Vec::new();
    for _ in 0..10 {
        let ch = channel(&url).await;
        for i in 0..1000 {
            let mut c = MessagingServiceClient::new(ch.clone());
            let (tx, rx) = tokio::sync::mpsc::channel::<pb::TelemetryCommand>(1);
            let call = tokio::spawn(async move {
                c.telemetry(with_client_id(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                    &format!("idle-{i}"),
                ))
                .await
            });
            idle.push((tx, call));
        }
    }
    // Every one of them was accepted (its response headers came back) and stays open.
    let mut open = Vec::new();
    for (tx, call) in idle {
        let stream = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("an idle stream was not accepted")
            .unwrap()
            .expect("an idle stream was refused");
        open.push((tx, stream));
    }
    assert_eq!(open.len(), 10_000);
    still_serving(&url).await;
    drop(open);
    // Leaving: the client is no longer listed.
    drop(tx);
    answering.abort();
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let list = call(
            &conn,
            RemotingCommand::request(203).with_field("consumerGroup", "grpc-g"),
        )
        .await;
        if list.code == 206 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the consumer is still listed after its stream closed");
    still_serving(&url).await;
}

/// A consumer's Telemetry stream, kept open while the returned sender lives.
pub(crate) async fn open_session(
    client: &mut MessagingServiceClient<Channel>,
    id: &str,
    group: &str,
    topic: &str,
) -> tokio::sync::mpsc::Sender<pb::TelemetryCommand> {
    open_session_with(client, id, consumer_settings(group, topic)).await
}

/// A client's Telemetry stream opened with `settings`, kept open while the returned
/// sender lives.
pub(crate) async fn open_session_with(
    client: &mut MessagingServiceClient<Channel>,
    id: &str,
    settings: pb::TelemetryCommand,
) -> tokio::sync::mpsc::Sender<pb::TelemetryCommand> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(settings).await.unwrap();
    let mut replies = client
        .telemetry(with_client_id(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            id,
        ))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    assert_eq!(reply.status.unwrap().code, Code::Ok as i32);
    // Keep reading so the stream stays healthy; it ends when the sender is dropped.
    tokio::spawn(async move { while let Ok(Some(_)) = replies.message().await {} });
    tx
}

pub(crate) async fn receive(
    client: &mut MessagingServiceClient<Channel>,
    id: &str,
    group: &str,
    topic: &str,
    auto_renew: bool,
) -> Vec<pb::Message> {
    let request = pb::ReceiveMessageRequest {
        auto_renew,
        long_polling_timeout: seconds(5),
        batch_size: 8,
        ..receive_request(group, topic, (!auto_renew).then_some(10))
    };
    receive_with(client, id, request).await
}

/// Sends `request` as client `id` and collects the messages of the answer stream; its
/// status frames must say OK or MESSAGE_NOT_FOUND.
pub(crate) async fn receive_with(
    client: &mut MessagingServiceClient<Channel>,
    id: &str,
    request: pb::ReceiveMessageRequest,
) -> Vec<pb::Message> {
    let mut stream = client
        .receive_message(with_client_id(request, id))
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while let Some(frame) = stream.message().await.unwrap() {
        match frame.content {
            Some(pb::receive_message_response::Content::Message(m)) => out.push(m),
            Some(pb::receive_message_response::Content::Status(s)) => assert!(
                s.code == Code::Ok as i32 || s.code == Code::MessageNotFound as i32,
                "{s:?}"
            ),
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn push_deliveries_are_renewed_while_their_client_lives() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with(
        "defaultInvisibleTimeMills=2000\nrenewAheadTimeMillis=1000\n",
        &["--grpc-listen", &listen],
    );
    let url = format!("http://{listen}");
    let conn = connect(&server.broker).await;
    assert_eq!(
        call(&conn, send_request("renew-t", b"slow", "")).await.code,
        0
    );
    let mut client = MessagingServiceClient::new(channel(&url).await);
    let session = open_session(&mut client, "pusher", "renew-g", "renew-t").await;
    let got = receive(&mut client, "pusher", "renew-g", "renew-t", true).await;
    assert_eq!(got.len(), 1);
    let handle = got[0]
        .system_properties
        .as_ref()
        .unwrap()
        .receipt_handle
        .clone()
        .unwrap();
    // Three invisible times later it is still hidden: the front renewed it.
    tokio::time::sleep(Duration::from_millis(6000)).await;
    let other = open_session(&mut client, "other", "renew-g", "renew-t").await;
    assert!(receive(&mut client, "other", "renew-g", "renew-t", false)
        .await
        .is_empty());
    // The first handle still acks: the front substitutes the renewed delivery.
    let ack = client
        .ack_message(with_client_id(
            pb::AckMessageRequest {
                group: resource("renew-g"),
                topic: resource("renew-t"),
                entries: vec![pb::AckMessageEntry {
                    message_id: got[0]
                        .system_properties
                        .as_ref()
                        .unwrap()
                        .message_id
                        .clone(),
                    receipt_handle: handle,
                    lite_topic: None,
                }],
            },
            "pusher",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.status.unwrap().code, Code::Ok as i32);
    // A delivery whose client goes away is renewed no more and comes back.
    assert_eq!(
        call(&conn, send_request("renew-t", b"orphan", ""))
            .await
            .code,
        0
    );
    let got = receive(&mut client, "pusher", "renew-g", "renew-t", true).await;
    assert_eq!(got.len(), 1);
    drop(session);
    let again = receive(&mut client, "other", "renew-g", "renew-t", false).await;
    assert_eq!(again.len(), 1, "the orphaned delivery did not come back");
    assert_eq!(again[0].body, b"orphan");
    assert_eq!(
        again[0]
            .system_properties
            .as_ref()
            .unwrap()
            .delivery_attempt,
        Some(2)
    );
    drop(other);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_acl_on_grpc_calls_are_signed_and_permissions_checked() {
    let files = tempfile::tempdir().unwrap();
    let acl = files.path().join("plain_acl.yml");
    std::fs::write(
        &acl,
        "accounts:\n  - accessKey: grpc-key\n    secretKey: grpc-secret\n    defaultTopicPerm: DENY\n    topicPerms:\n      - TBW102=SUB\n",
    )
    .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _server = Server::start_with(
        &format!("aclEnable=true\nplainAclFile={}\n", acl.display()),
        &["--grpc-listen", &listen],
    );
    let mut client = MessagingServiceClient::new(channel(&format!("http://{listen}")).await);
    let route = |signed_with: Option<&str>| {
        let mut req = tonic::Request::new(pb::QueryRouteRequest {
            topic: resource("TBW102"),
            endpoints: None,
        });
        let date = "20261206T120000Z";
        req.metadata_mut()
            .insert("x-mq-date-time", date.parse().unwrap());
        if let Some(secret) = signed_with {
            let sig = ferromq_protocol::acl::grpc_signature(secret, date);
            let header = format!(
                "MQv2-HMAC-SHA1 Credential=grpc-key, SignedHeaders=x-mq-date-time, Signature={sig}"
            );
            req.metadata_mut()
                .insert("authorization", header.parse().unwrap());
        }
        req
    };
    let code = |r: pb::QueryRouteResponse| r.status.unwrap().code;
    let unsigned = client.query_route(route(None)).await.unwrap().into_inner();
    assert_eq!(code(unsigned), Code::Unauthorized as i32);
    let forged = client
        .query_route(route(Some("wrong-secret")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(forged), Code::Unauthorized as i32);
    let signed = client
        .query_route(route(Some("grpc-secret")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(signed), Code::Ok as i32);
    // SUB on TBW102 does not allow publishing to it.
    let mut send = tonic::Request::new(pb::SendMessageRequest {
        messages: vec![pb::Message {
            topic: resource("TBW102"),
            system_properties: Some(pb::SystemProperties {
                message_id: "01ACL".into(),
                ..Default::default()
            }),
            body: b"x".to_vec(),
            ..Default::default()
        }],
    });
    let date = "20261206T120001Z";
    send.metadata_mut()
        .insert("x-mq-date-time", date.parse().unwrap());
    let sig = ferromq_protocol::acl::grpc_signature("grpc-secret", date);
    send.metadata_mut().insert(
        "authorization",
        format!(
            "MQv2-HMAC-SHA1 Credential=grpc-key, SignedHeaders=x-mq-date-time, Signature={sig}"
        )
        .parse()
        .unwrap(),
    );
    let refused = client.send_message(send).await.unwrap().into_inner();
    let s = refused.status.unwrap();
    assert_eq!(s.code, Code::Unauthorized as i32);
    assert!(
        s.message.contains("No permission for topic:TBW102"),
        "{}",
        s.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_acl_2_on_grpc_calls_are_checked_against_the_users_policies() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with(
        "authenticationEnabled=true\nauthorizationEnabled=true\ninitAuthenticationUser={\"username\":\"root\",\"password\":\"root-secret\"}\n",
        &["--grpc-listen", &listen],
    );
    let root = ["--accessKey", "root", "--secretKey", "root-secret"];
    for args in [
        &["createUser", "-u", "grpc-user", "-p", "grpc-password"][..],
        &[
            "createAcl",
            "-s",
            "User:grpc-user",
            "-r",
            "Topic:TBW102",
            "-a",
            "Sub",
            "-d",
            "Allow",
        ][..],
    ] {
        let (ok, out, err) = crate::admin::admin(&server, &[&root[..], args].concat());
        assert!(ok, "{args:?}: {out}{err}");
    }
    let mut client = MessagingServiceClient::new(channel(&format!("http://{listen}")).await);
    let signed = |mut req: tonic::metadata::MetadataMap, secret: &str| {
        let date = "20261207T100000Z";
        let sig = ferromq_protocol::acl::grpc_signature(secret, date);
        req.insert("x-mq-date-time", date.parse().unwrap());
        req.insert(
            "authorization",
            format!("MQv2-HMAC-SHA1 Credential=grpc-user, SignedHeaders=x-mq-date-time, Signature={sig}")
                .parse()
                .unwrap(),
        );
        req
    };
    let route = |secret: &str| {
        let mut req = tonic::Request::new(pb::QueryRouteRequest {
            topic: resource("TBW102"),
            endpoints: None,
        });
        *req.metadata_mut() = signed(req.metadata().clone(), secret);
        req
    };
    let answer = client
        .query_route(route("grpc-password"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status.unwrap().code, Code::Ok as i32);
    let forged = client
        .query_route(route("guess"))
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(
        (forged.code, forged.message.as_str()),
        (Code::Unauthorized as i32, "check signature failed.")
    );

    let mut send = tonic::Request::new(pb::SendMessageRequest {
        messages: vec![pb::Message {
            topic: resource("TBW102"),
            system_properties: Some(pb::SystemProperties {
                message_id: "01ACL2".into(),
                ..Default::default()
            }),
            body: b"x".to_vec(),
            ..Default::default()
        }],
    });
    *send.metadata_mut() = signed(send.metadata().clone(), "grpc-password");
    let refused = client
        .send_message(send)
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(refused.code, Code::Unauthorized as i32);
    assert_eq!(
        refused.message,
        "User:grpc-user has no permission to access Topic:TBW102 from 127.0.0.1, no matched policies. The request needs Pub."
    );
}
