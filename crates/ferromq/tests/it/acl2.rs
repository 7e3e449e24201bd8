//! ACL 2.0 (authenticationEnabled, authorizationEnabled): users and policies made with
//! `ferromq admin` under Apache's mqadmin names, the Rust client signing as a user, Apache's
//! refusal messages, the tables surviving a crash, the plain ACL import, and malformed
//! admin requests.

use std::time::{Duration, Instant};

use ferromq_client::{Message, Producer};
use ferromq_protocol::code::{request, response};
use ferromq_protocol::RemotingCommand;

use crate::admin::admin;
use crate::dashboard::http;
use crate::harness::{call, connect, refused_start, Server};

const CONF: &str = "authenticationEnabled=true
authorizationEnabled=true
initAuthenticationUser={\"username\":\"root\",\"password\":\"root-secret\"}
";

fn as_root<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--accessKey", "root", "--secretKey", "root-secret"];
    all.extend_from_slice(args);
    all
}

fn admin_ok(server: &Server, args: &[&str]) -> String {
    let (ok, out, err) = admin(server, args);
    assert!(ok, "{args:?}: {out}{err}");
    out
}

fn producer(server: &Server, user: Option<(&str, &str)>, name: &str) -> Producer {
    let mut b = Producer::builder()
        .name_servers([server.namesrv.clone()])
        .group("acl2-pg")
        .instance_name(name)
        .retries(0);
    if let Some((u, p)) = user {
        b = b.credentials(u, p);
    }
    b.build().unwrap()
}

async fn refusal(p: &Producer, topic: &str) -> String {
    match p.send(Message::new(topic, "x")).await {
        Ok(r) => panic!("a send to {topic} passed: {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_policies_decide_who_sends_and_consumes_and_survive_a_crash() {
    let server = Server::start_with(CONF, &["--dashboard-credentials", "root:root-secret"]);
    for topic in ["orders", "payments"] {
        admin_ok(
            &server,
            &as_root(&["updateTopic", "-t", topic, "-r", "2", "-w", "2"]),
        );
    }
    let out = admin_ok(
        &server,
        &as_root(&["createUser", "-u", "alice", "-p", "alice-secret"]),
    );
    assert!(
        out.contains("create user to") && out.contains("success"),
        "{out}"
    );
    admin_ok(
        &server,
        &as_root(&[
            "createAcl",
            "-s",
            "User:alice",
            "-r",
            "Topic:orders,Group:billing",
            "-a",
            "Pub,Sub",
            "-d",
            "Allow",
        ]),
    );

    let alice = producer(&server, Some(("alice", "alice-secret")), "alice");
    alice
        .send(Message::new("orders", "paid"))
        .await
        .expect("alice may publish to orders");
    assert!(
        refusal(&alice, "payments").await.contains(
            "User:alice has no permission to access Topic:payments from 127.0.0.1, no matched policies. The request needs Pub."
        )
    );
    let anonymous = producer(&server, None, "anonymous");
    assert!(refusal(&anonymous, "orders")
        .await
        .contains("username cannot be null."));
    let forger = producer(&server, Some(("alice", "guessed")), "forger");
    assert!(refusal(&forger, "orders")
        .await
        .contains("check signature failed."));

    let first =
        crate::acl::first_consumed(&server, "billing", "orders", ("alice", "alice-secret")).await;
    assert_eq!(first.as_deref(), Some(&b"paid"[..]));

    // Alice holds no Create on topics and no Update on the cluster.
    let (ok, out, err) = admin(
        &server,
        &[
            "--accessKey",
            "alice",
            "--secretKey",
            "alice-secret",
            "updateTopic",
            "-t",
            "mine",
        ],
    );
    assert!(
        !ok && err.contains("User:alice has no permission to access Topic:mine"),
        "{out}{err}"
    );
    let (ok, _, err) = admin(
        &server,
        &[
            "--accessKey",
            "alice",
            "--secretKey",
            "alice-secret",
            "createUser",
            "-u",
            "eve",
            "-p",
            "eve-secret",
            "-t",
            "Super",
        ],
    );
    assert!(!ok && err.contains("Cluster:DefaultCluster"), "{err}");

    let users = admin_ok(&server, &as_root(&["listUser", "--json"]));
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    let listed: Vec<(String, String)> = users
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
        .map(|u| {
            (
                u["username"].as_str().unwrap().to_string(),
                u["userType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("alice".to_string(), "Normal".to_string()),
            ("root".to_string(), "Super".to_string())
        ]
    );
    let acl = admin_ok(&server, &as_root(&["getAcl", "-s", "User:alice"]));
    assert!(
        acl.contains("Topic:orders") && acl.contains("Group:billing") && acl.contains("Pub,Sub"),
        "{acl}"
    );

    // updateAcl replaces the entry for the same resource: orders is now denied from here.
    admin_ok(
        &server,
        &as_root(&[
            "updateAcl",
            "-s",
            "User:alice",
            "-r",
            "Topic:orders",
            "-a",
            "Pub",
            "-i",
            "127.0.0.0/8",
            "-d",
            "Deny",
        ]),
    );
    assert!(refusal(&alice, "orders")
        .await
        .contains("Topic:orders from 127.0.0.1, the decision is deny."));
    alice.shutdown();

    // The dashboard's Access page API (signed with the root user's credentials).
    let dashboard = server.dashboard.clone();
    tokio::task::spawn_blocking(move || {
        let call = |method: &str, path: &str, body: Option<serde_json::Value>| http(&dashboard, method, path, body, None);
        let (status, body) = call("POST", "/api/access/users", Some(serde_json::json!({"username": "carol", "password": "carol-secret"})));
        assert_eq!(status, 201, "{body}");
        let grant = serde_json::json!({"subject": "User:carol", "resources": ["Topic:orders"], "actions": ["Sub"], "sourceIps": ["10.0.0.0/8"], "decision": "Allow"});
        let (status, body) = call("POST", "/api/access/acls", Some(grant));
        assert_eq!(status, 201, "{body}");
        let (status, body) = call("POST", "/api/access/acls", Some(serde_json::json!({"subject": "User:carol", "resources": ["Queue:q"], "actions": ["Sub"], "decision": "Allow"})));
        assert_eq!(status, 403, "a malformed policy is the broker's refusal: {body}");
        assert!(body.to_string().contains("resource type"), "{body}");
        let (status, body) = call("GET", "/api/access", None);
        assert_eq!(status, 200, "{body}");
        let broker = &body[0];
        let carol = broker["users"].as_array().unwrap().iter().find(|u| u["username"] == "carol").cloned();
        assert_eq!(carol, Some(serde_json::json!({"username": "carol", "userType": "Normal", "userStatus": "enable"})), "no password shown");
        let acl = broker["acls"].as_array().unwrap().iter().find(|a| a["subject"] == "User:carol").cloned().unwrap();
        assert_eq!(acl["policies"][0]["entries"][0]["sourceIps"], serde_json::json!(["10.0.0.0/8"]));
        let (status, _) = call("DELETE", "/api/access/acls?subject=User:carol&resource=Topic:orders", None);
        assert_eq!(status, 200);
        let (status, _) = call("DELETE", "/api/access/users/carol", None);
        assert_eq!(status, 200);
        let (_, body) = call("GET", "/api/access", None);
        assert!(!body.to_string().contains("carol"), "{body}");
    })
    .await
    .unwrap();

    // The tables are on disk: a SIGKILL loses neither the user nor the policy.
    let mut server = server.crash_and_restart(CONF);
    let alice = producer(&server, Some(("alice", "alice-secret")), "alice-again");
    assert!(refusal(&alice, "orders")
        .await
        .contains("the decision is deny."));
    admin_ok(
        &server,
        &as_root(&["deleteAcl", "-s", "User:alice", "-r", "Topic:orders"]),
    );
    let left = admin_ok(&server, &as_root(&["listAcl", "-s", "alice"]));
    assert!(
        left.contains("Group:billing") && !left.contains("Topic:orders"),
        "{left}"
    );
    admin_ok(
        &server,
        &as_root(&["updateUser", "-u", "alice", "-s", "disable"]),
    );
    assert!(refusal(&alice, "orders")
        .await
        .contains("User:alice is disabled."));
    admin_ok(&server, &as_root(&["deleteUser", "-u", "alice"]));
    assert!(refusal(&alice, "orders")
        .await
        .contains("User:alice is not found."));
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_acl_file_is_imported_and_its_accounts_sign_as_users() {
    let files = tempfile::tempdir().unwrap();
    let plain = files.path().join("plain_acl.yml");
    std::fs::write(
        &plain,
        "accounts:\n  - accessKey: legacy-app\n    secretKey: legacy-secret\n    defaultTopicPerm: DENY\n    defaultGroupPerm: SUB\n    topicPerms:\n      - legacy-topic=PUB|SUB\n  - accessKey: legacy-admin\n    secretKey: legacy-admin-secret\n    admin: true\n",
    )
    .unwrap();
    let server = Server::start(&format!(
        "authenticationEnabled=true\nauthorizationEnabled=true\nmigrateAuthFromV1Enabled=true\nplainAclFile={}\n",
        plain.display()
    ));
    let admin_key = [
        "--accessKey",
        "legacy-admin",
        "--secretKey",
        "legacy-admin-secret",
    ];
    for topic in ["legacy-topic", "other-topic"] {
        let mut args = admin_key.to_vec();
        args.extend(["updateTopic", "-t", topic]);
        admin_ok(&server, &args);
    }
    let app = producer(&server, Some(("legacy-app", "legacy-secret")), "legacy");
    app.send(Message::new("legacy-topic", "x"))
        .await
        .expect("the imported topic permission");
    assert!(refusal(&app, "other-topic")
        .await
        .contains("Topic:other-topic from 127.0.0.1, the decision is deny."));
    let mut args = admin_key.to_vec();
    args.extend(["getUser", "-u", "legacy-admin"]);
    assert!(admin_ok(&server, &args).contains("Super"));
}

#[test]
fn contradictory_or_foreign_auth_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_start(dir.path(), "aclEnable=true\nauthenticationEnabled=true\n");
    assert!(
        err.contains("aclEnable") && err.contains("migrateAuthFromV1Enabled"),
        "{err}"
    );
    let err = refused_start(
        dir.path(),
        "authenticationProvider=com.example.LdapProvider\n",
    );
    assert!(
        err.contains("authenticationProvider") && err.contains("DefaultAuthenticationProvider"),
        "{err}"
    );
    let err = refused_start(dir.path(), "initAuthenticationUser=root:secret\n");
    assert!(err.contains("initAuthenticationUser"), "{err}");
    let err = refused_start(
        dir.path(),
        "authenticationEnabled=true\ninitAuthenticationUser={\"username\":\"root\"}\n",
    );
    assert!(err.contains("initAuthenticationUser"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_user_and_acl_requests_get_clear_answers() {
    // Authentication off: the tables can be managed unsigned (as Apache allows).
    let server = Server::start("");
    let conn = connect(&server.broker).await;
    let req = |code: i32| RemotingCommand::request(code);

    let resp = call(
        &conn,
        req(request::AUTH_CREATE_USER)
            .with_field("username", "u")
            .with_body(b"{oops".to_vec()),
    )
    .await;
    assert_eq!(resp.code, response::INVALID_PARAMETER, "{:?}", resp.remark);
    assert!(resp.remark.as_deref().unwrap_or("").contains("UserInfo"));
    let resp = call(
        &conn,
        req(request::AUTH_CREATE_USER).with_body(b"{}".to_vec()),
    )
    .await;
    assert_eq!(
        (resp.code, resp.remark.as_deref()),
        (response::INVALID_PARAMETER, Some("The username is blank"))
    );
    let resp = call(
        &conn,
        req(request::AUTH_CREATE_USER)
            .with_field("username", "u")
            .with_body(b"{}".to_vec()),
    )
    .await;
    assert_eq!(
        (resp.code, resp.remark.as_deref()),
        (response::NO_PERMISSION, Some("password can not be blank"))
    );
    let resp = call(
        &conn,
        req(request::AUTH_CREATE_USER)
            .with_field("username", "u")
            .with_body(br#"{"password":"p","userType":"Root"}"#.to_vec()),
    )
    .await;
    assert!(
        resp.remark
            .as_deref()
            .unwrap_or("")
            .contains("Super, Normal"),
        "{:?}",
        resp.remark
    );
    let resp = call(
        &conn,
        req(request::AUTH_CREATE_USER)
            .with_field("username", "u")
            .with_body(br#"{"password":"p"}"#.to_vec()),
    )
    .await;
    assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);

    let acl = |body: &str| {
        req(request::AUTH_CREATE_ACL)
            .with_field("subject", "User:u")
            .with_body(body.as_bytes().to_vec())
    };
    for (body, expected) in [
        ("[1,2]", "AclInfo"),
        ("{}", "The policies is empty."),
        (
            r#"{"policies":[{"entries":[{"resource":"Queue:q","actions":["Pub"],"decision":"Allow"}]}]}"#,
            "resource type",
        ),
        (
            r#"{"policies":[{"entries":[{"resource":"Topic:t","actions":["Pub"],"sourceIps":["nowhere"],"decision":"Allow"}]}]}"#,
            "source ip",
        ),
        (
            r#"{"policies":[{"entries":[{"resource":"Topic:t","actions":["Pub"]}]}]}"#,
            "decision",
        ),
    ] {
        let resp = call(&conn, acl(body)).await;
        assert_ne!(resp.code, response::SUCCESS, "{body}");
        assert!(
            resp.remark.as_deref().unwrap_or("").contains(expected),
            "{body}: {:?}",
            resp.remark
        );
    }
    let resp = call(&conn, req(request::AUTH_DELETE_ACL)).await;
    assert_eq!(resp.code, response::INVALID_PARAMETER);
    let resp = call(
        &conn,
        req(request::AUTH_GET_ACL).with_field("subject", "nobody"),
    )
    .await;
    assert!(
        resp.remark
            .as_deref()
            .unwrap_or("")
            .contains("User:<username>"),
        "{:?}",
        resp.remark
    );
    // A user that does not exist is a success without a body, as in Apache.
    let resp = call(
        &conn,
        req(request::AUTH_GET_USER).with_field("username", "ghost"),
    )
    .await;
    assert_eq!((resp.code, resp.body.len()), (response::SUCCESS, 0));
    let mut server = server;
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_copies_its_masters_topics_signed_with_the_inner_client_credentials() {
    use crate::cluster::{broker, master_conf, namesrv, slave_conf};
    use crate::harness::free_port;

    let auth = "authenticationEnabled=true\nauthorizationEnabled=true\n\
        innerClientAuthenticationCredentials={\"accessKey\":\"inner\",\"secretKey\":\"inner-secret\"}\n";
    let (_ns, ns) = namesrv();
    let dir = tempfile::tempdir().unwrap();
    let ha_port = free_port();
    let (_master, master_addr) = broker(
        dir.path(),
        "master",
        &master_conf("broker-acl", &ns, ha_port, auth),
    );
    let (_slave, slave_addr) = broker(
        dir.path(),
        "slave",
        &slave_conf("broker-acl", &ns, ha_port, auth),
    );
    let signed = |req: RemotingCommand| {
        let mut req = req;
        ferromq_protocol::acl::sign(&mut req, "inner", "inner-secret");
        req
    };
    let master = connect(&master_addr).await;
    let create = RemotingCommand::request(request::UPDATE_AND_CREATE_TOPIC)
        .with_field("topic", "copied-under-acl")
        .with_field("defaultTopic", "TBW102")
        .with_field("readQueueNums", 2)
        .with_field("writeQueueNums", 2)
        .with_field("perm", 6)
        .with_field("topicFilterType", "SINGLE_TAG");
    let unsigned = call(&master, create.clone()).await;
    assert_eq!(
        (unsigned.code, unsigned.remark.as_deref()),
        (response::NO_PERMISSION, Some("username cannot be null."))
    );
    let resp = call(&master, signed(create)).await;
    assert_eq!(resp.code, response::SUCCESS, "{:?}", resp.remark);

    let slave = connect(&slave_addr).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let resp = call(
            &slave,
            signed(
                RemotingCommand::request(request::GET_TOPIC_CONFIG)
                    .with_field("topic", "copied-under-acl"),
            ),
        )
        .await;
        if resp.code == response::SUCCESS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slave never copied the topic: {:?}",
            resp.remark
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_policies_are_copied_from_one_broker_to_another() {
    let from = Server::start("");
    let to = Server::start("");
    admin_ok(
        &from,
        &[
            "createUser",
            "-u",
            "dave",
            "-p",
            "dave-secret",
            "-t",
            "Super",
        ],
    );
    admin_ok(&from, &["createUser", "-u", "erin", "-p", "erin-secret"]);
    admin_ok(
        &from,
        &[
            "createAcl",
            "-s",
            "User:erin",
            "-r",
            "Topic:t1,Group:g1",
            "-a",
            "Sub",
            "-d",
            "Allow",
        ],
    );
    admin_ok(&to, &["createUser", "-u", "erin", "-p", "old-password"]);
    let out = admin_ok(&from, &["copyUser", "-f", &from.broker, "-t", &to.broker]);
    assert!(
        out.contains(&format!(
            "copy user of erin from {} to {} success.",
            from.broker, to.broker
        )),
        "{out}"
    );
    let users = admin_ok(&to, &["listUser"]);
    assert!(users.contains("dave") && users.contains("Super"), "{users}");
    assert!(
        users.contains("erin-secret"),
        "the existing user is updated: {users}"
    );
    let out = admin_ok(
        &from,
        &[
            "copyAcl",
            "-f",
            &from.broker,
            "-t",
            &to.broker,
            "-s",
            "User:erin",
        ],
    );
    assert!(out.contains("copy acl of User:erin"), "{out}");
    let acls = admin_ok(&to, &["getAcl", "-s", "User:erin"]);
    assert!(
        acls.contains("Topic:t1") && acls.contains("Group:g1"),
        "{acls}"
    );
}
