//! gRPC front operations the official clients call rarely or only at the end of a client's
//! life: a topic's message type checked on send, ForwardMessageToDeadLetterQueue, RecallMessage,
//! NotifyClientTermination, and gRPC producers listed beside remoting ones.

use std::time::Duration;

use ferromq_grpc_proto::v2::{
    self as pb, messaging_service_client::MessagingServiceClient, telemetry_command, Code,
};
use ferromq_protocol::RemotingCommand;
use tonic::transport::Channel;

use crate::grpc::{
    channel, open_session, open_session_with, receive_request, receive_with, resource, seconds,
    start, still_serving, with_client_id,
};
use crate::harness::*;

fn message(topic: &str, id: &str, body: &[u8], system: pb::SystemProperties) -> pb::Message {
    pb::Message {
        topic: resource(topic),
        system_properties: Some(pb::SystemProperties {
            message_id: id.into(),
            ..system
        }),
        body: body.to_vec(),
        ..Default::default()
    }
}

async fn send(
    client: &mut MessagingServiceClient<Channel>,
    m: pb::Message,
) -> pb::SendMessageResponse {
    client
        .send_message(with_client_id(
            pb::SendMessageRequest { messages: vec![m] },
            "ops-producer",
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Receives what `group` can see of `topic` now, hiding it for `invisible_s`.
async fn receive_now(
    client: &mut MessagingServiceClient<Channel>,
    id: &str,
    group: &str,
    topic: &str,
    invisible_s: i64,
) -> Vec<pb::Message> {
    let request = pb::ReceiveMessageRequest {
        long_polling_timeout: seconds(1),
        batch_size: 8,
        ..receive_request(group, topic, Some(invisible_s))
    };
    receive_with(client, id, request).await
}

fn system(m: &pb::Message) -> &pb::SystemProperties {
    m.system_properties.as_ref().unwrap()
}

fn code(s: &Option<pb::Status>) -> i32 {
    s.as_ref().map_or(-1, |s| s.code)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_of_another_type_than_the_topics_is_refused_naming_both() {
    let (server, url) = start();
    let conn = connect(&server.broker).await;
    let create = RemotingCommand::request(17)
        .with_field("topic", "fifo-only")
        .with_field("readQueueNums", 2)
        .with_field("writeQueueNums", 2)
        .with_field("perm", 6)
        .with_field("topicFilterType", "SINGLE_TAG")
        .with_field("attributes", "+message.type=FIFO");
    assert_eq!(call(&conn, create).await.code, 0);
    let mut client = MessagingServiceClient::new(channel(&url).await);
    let route = client
        .query_route(pb::QueryRouteRequest {
            topic: resource("fifo-only"),
            endpoints: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&route.status), Code::Ok as i32);
    assert!(route
        .message_queues
        .iter()
        .all(|q| q.accept_message_types == [pb::MessageType::Fifo as i32]));

    // No message group: a NORMAL message to a FIFO topic.
    let refused = send(
        &mut client,
        message("fifo-only", "01TYPE", b"x", Default::default()),
    )
    .await;
    assert_eq!(
        code(&refused.status),
        Code::MessagePropertyConflictWithType as i32
    );
    let why = &refused.status.unwrap().message;
    assert!(
        why.contains("expected type is FIFO") && why.contains("actual type is NORMAL"),
        "{why}"
    );
    // With a message group it is a FIFO message, and stored.
    let accepted = send(
        &mut client,
        message(
            "fifo-only",
            "01TYPE2",
            b"y",
            pb::SystemProperties {
                message_group: Some("g1".into()),
                ..Default::default()
            },
        ),
    )
    .await;
    assert_eq!(code(&accepted.status), Code::Ok as i32);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_forwarded_to_the_dead_letter_queue_is_there_and_not_redelivered() {
    let (server, url) = start();
    let conn = connect(&server.broker).await;
    assert_eq!(
        call(&conn, send_request("dlq-t", b"poison", "")).await.code,
        0
    );
    let mut client = MessagingServiceClient::new(channel(&url).await);
    let _session = open_session(&mut client, "dlq-consumer", "dlq-g", "dlq-t").await;
    // 10 s: the least invisible time a receive may ask for (Apache's proxy's too).
    let got = receive_now(&mut client, "dlq-consumer", "dlq-g", "dlq-t", 10).await;
    assert_eq!(got.len(), 1);
    let forward = |handle: String| pb::ForwardMessageToDeadLetterQueueRequest {
        group: resource("dlq-g"),
        topic: resource("dlq-t"),
        receipt_handle: handle,
        message_id: system(&got[0]).message_id.clone(),
        delivery_attempt: 1,
        max_delivery_attempts: 16,
        lite_topic: None,
    };
    let garbage = client
        .forward_message_to_dead_letter_queue(with_client_id(
            forward("not-a-handle".into()),
            "dlq-consumer",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(&garbage.status),
        Code::InvalidReceiptHandle as i32,
        "{:?}",
        garbage.status
    );
    let handle = system(&got[0]).receipt_handle.clone().unwrap();
    let moved = client
        .forward_message_to_dead_letter_queue(with_client_id(forward(handle), "dlq-consumer"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&moved.status), Code::Ok as i32, "{:?}", moved.status);
    assert_eq!(
        queue0_bodies(&conn, "%DLQ%dlq-g").await,
        vec![b"poison".to_vec()]
    );
    // Past its invisible time it does not come back: the forward acknowledged it.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert!(
        receive_now(&mut client, "dlq-consumer", "dlq-g", "dlq-t", 10)
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recalled_delayed_message_is_never_delivered_and_a_bad_handle_is_refused() {
    let (server, url) = start();
    // A delay topic: the gRPC front creates no topics (as Apache's proxy) and checks types.
    let conn = connect(&server.broker).await;
    let create = RemotingCommand::request(17)
        .with_field("topic", "recall-t")
        .with_field("readQueueNums", 2)
        .with_field("writeQueueNums", 2)
        .with_field("perm", 6)
        .with_field("topicFilterType", "SINGLE_TAG")
        .with_field("attributes", "+message.type=DELAY");
    assert_eq!(call(&conn, create).await.code, 0);
    let mut client = MessagingServiceClient::new(channel(&url).await);
    let due = |ms: i64| pb::SystemProperties {
        delivery_timestamp: Some(ferromq_grpc_proto::prost_types::Timestamp {
            seconds: ms / 1000,
            nanos: ((ms % 1000) * 1_000_000) as i32,
        }),
        ..Default::default()
    };
    let sent = send(
        &mut client,
        message("recall-t", "01RECALLED", b"cancelled", due(now_ms() + 3000)),
    )
    .await;
    assert_eq!(code(&sent.status), Code::Ok as i32, "{:?}", sent.status);
    let handle = sent.entries[0].recall_handle.clone();
    assert!(!handle.is_empty(), "a delayed send gets a recall handle");
    let kept = send(
        &mut client,
        message("recall-t", "01KEPT", b"kept", due(now_ms() + 3000)),
    )
    .await;
    assert_eq!(code(&kept.status), Code::Ok as i32);

    let recall = |handle: String| pb::RecallMessageRequest {
        topic: resource("recall-t"),
        recall_handle: handle,
    };
    let bad = client
        .recall_message(with_client_id(recall("bogus".into()), "ops-producer"))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(code(&bad.status), Code::Ok as i32);
    assert!(!bad.status.unwrap().message.is_empty());
    let recalled = client
        .recall_message(with_client_id(recall(handle), "ops-producer"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(&recalled.status),
        Code::Ok as i32,
        "{:?}",
        recalled.status
    );
    assert_eq!(recalled.message_id, "01RECALLED");

    // Past the due time only the other message is delivered.
    let _session = open_session(&mut client, "recall-consumer", "recall-g", "recall-t").await;
    let mut bodies = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while bodies.is_empty() && std::time::Instant::now() < deadline {
        bodies = receive_now(&mut client, "recall-consumer", "recall-g", "recall-t", 30)
            .await
            .into_iter()
            .map(|m| m.body)
            .collect();
    }
    assert_eq!(bodies, vec![b"kept".to_vec()]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        receive_now(&mut client, "recall-consumer", "recall-g", "recall-t", 30)
            .await
            .is_empty(),
        "the recalled message was delivered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminated_client_is_no_longer_listed_and_producers_are_listed() {
    let (server, url) = start();
    let conn = connect(&server.broker).await;
    let mut client = MessagingServiceClient::new(channel(&url).await);
    let listed = |group: &'static str| {
        let conn = &conn;
        async move {
            let resp = call(
                conn,
                RemotingCommand::request(203).with_field("consumerGroup", group),
            )
            .await;
            resp.code == 0 && String::from_utf8_lossy(&resp.body).contains("leaving-client")
        }
    };
    let _session = open_session(&mut client, "leaving-client", "leave-g", "TBW102").await;
    assert!(listed("leave-g").await);
    let unknown = client
        .notify_client_termination(with_client_id(
            pb::NotifyClientTerminationRequest {
                group: resource("leave-g"),
            },
            "never-said-hello",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(code(&unknown.status), Code::Ok as i32);
    let bye = client
        .notify_client_termination(with_client_id(
            pb::NotifyClientTerminationRequest {
                group: resource("leave-g"),
            },
            "leaving-client",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&bye.status), Code::Ok as i32);
    assert!(
        !listed("leave-g").await,
        "listed after its termination notice"
    );

    // A producer's settings name its topics; it is listed under each, as Apache's proxy does.
    let producer = pb::TelemetryCommand {
        status: None,
        command: Some(telemetry_command::Command::Settings(pb::Settings {
            client_type: Some(pb::ClientType::Producer as i32),
            pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
                topics: vec![pb::Resource {
                    resource_namespace: String::new(),
                    name: "produced-t".into(),
                }],
                max_body_size: 0,
                validate_message_type: true,
            })),
            ..Default::default()
        })),
    };
    let session = open_session_with(&mut client, "grpc-producer", producer).await;
    let resp = call(
        &conn,
        RemotingCommand::request(204).with_field("producerGroup", "produced-t"),
    )
    .await;
    assert_eq!(resp.code, 0, "{:?}", resp.remark);
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let set = body["connectionSet"].as_array().unwrap();
    assert!(
        set.iter().any(|c| c["clientId"] == "grpc-producer"),
        "{body}"
    );
    drop(session);
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_server_port_in_broker_conf_places_the_front() {
    let port = free_port();
    let mut server = Server::start(&format!("grpcServerPort={port}\n"));
    eventually("the ready line", || {
        server.logs().contains(&format!("gRPC 0.0.0.0:{port}"))
    });
    still_serving(&format!("http://127.0.0.1:{port}")).await;
    assert!(server.is_running());
}

/// gRPC calls are timed in `rocketmq_rpc_latency` with `protocol_type="grpc"`: unary calls
/// by method and status, a receive's long poll flagged as one.
#[tokio::test(flavor = "multi_thread")]
async fn grpc_calls_are_counted_in_the_rpc_latency_histogram() {
    let (server, url) = start();
    still_serving(&url).await;
    still_serving(&url).await;
    let mut client = MessagingServiceClient::new(channel(&url).await);
    let _session = open_session(&mut client, "metered", "metered-g", "TBW102").await;
    assert!(
        receive_now(&mut client, "metered", "metered-g", "TBW102", 10)
            .await
            .is_empty()
    );
    let count = |text: &str, method: &str, long_polling: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("rocketmq_rpc_latency_milliseconds_count{"))
            .filter(|l| {
                l.contains("protocol_type=\"grpc\"")
                    && l.contains(&format!("request_code=\"{method}\""))
                    && l.contains(&format!("is_long_polling=\"{long_polling}\""))
                    && l.contains("response_code=\"ok\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let scrape = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&server.dashboard).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw
    };
    let text = scrape();
    assert_eq!(count(&text, "query_route", "false"), 2.0, "{text}");
    assert_eq!(count(&text, "receive_message", "true"), 1.0, "{text}");
}
