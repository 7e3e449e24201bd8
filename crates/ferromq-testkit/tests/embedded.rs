//! The testkit as its users meet it: a broker per test, the Rust client against it.

use std::time::Duration;

use ferromq_client::{ConsumeResult, Message, MessageExtExt, Producer, PushConsumer, Selector};
use ferromq_testkit::EmbeddedBroker;

/// The README's example: start, send, consume, drop.
#[tokio::test]
async fn a_test_sends_and_consumes_through_its_own_broker() {
    let broker = EmbeddedBroker::start().expect("the embedded broker starts");

    let producer = Producer::builder()
        .name_servers([broker.namesrv_addr()])
        .group("testkit-producer")
        .build()
        .unwrap();
    let sent = producer
        .send(Message::new("TestkitTopic", "hello from a test"))
        .await
        .expect("the send is stored");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consumer = PushConsumer::builder()
        .name_servers([broker.namesrv_addr()])
        .group("testkit-consumer")
        .subscribe("TestkitTopic", Selector::All)
        .start(move |msgs| {
            let tx = tx.clone();
            async move {
                for m in msgs {
                    let _ = tx.send((m.msg_id(), m.body.clone()));
                }
                ConsumeResult::Success
            }
        })
        .await
        .unwrap();
    let (id, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the message arrives within 30 s")
        .unwrap();
    assert_eq!(&body[..], b"hello from a test");
    assert_eq!(id, sent.msg_id);
    consumer.shutdown().await;
    producer.shutdown();

    let data = broker.data_dir().to_path_buf();
    assert!(
        data.join("store").is_dir(),
        "the store is in the kit's directory"
    );
    drop(broker);
    assert!(!data.exists(), "dropping the broker deletes its data");
}

/// Two brokers side by side share nothing: each test can have its own.
#[test]
fn brokers_in_one_process_are_independent() {
    let a = EmbeddedBroker::start().unwrap();
    let b = EmbeddedBroker::builder()
        .config("defaultTopicQueueNums", "2")
        .start()
        .unwrap();
    assert_ne!(a.namesrv_addr(), b.namesrv_addr());
    assert_ne!(a.broker_addr(), b.broker_addr());
    assert_ne!(a.data_dir(), b.data_dir());
    let addr = a.namesrv_addr().to_string();
    a.stop();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "a stopped name server no longer accepts connections"
    );
    assert!(std::net::TcpStream::connect(b.namesrv_addr()).is_ok());
}

#[test]
fn a_refused_key_is_an_error_not_a_panic() {
    let err = EmbeddedBroker::builder()
        .config("flushDiskType", "SOMETIMES")
        .start()
        .err()
        .expect("a bad value is refused");
    assert!(err.to_string().contains("flushDiskType"), "{err}");
}

#[tokio::test]
async fn the_grpc_front_serves_routes_when_asked() {
    use ferromq_grpc_proto::v2::{self as pb, messaging_service_client::MessagingServiceClient};
    let broker = EmbeddedBroker::builder().grpc(true).start().unwrap();
    let url = format!("http://{}", broker.grpc_addr().expect("a gRPC address"));
    let mut client = MessagingServiceClient::connect(url).await.unwrap();
    let route = client
        .query_route(pb::QueryRouteRequest {
            topic: Some(pb::Resource {
                resource_namespace: String::new(),
                name: "TBW102".into(),
            }),
            endpoints: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(route.status.unwrap().code, pb::Code::Ok as i32);
    assert!(!route.message_queues.is_empty());
    assert!(EmbeddedBroker::start().unwrap().grpc_addr().is_none());
}
