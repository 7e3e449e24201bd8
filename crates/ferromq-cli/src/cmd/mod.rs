//! The command line: global flags, the commands under Apache mqadmin's names, and
//! dispatch to the module that owns each group of them.

use anyhow::Result;
use clap::{Args, Subcommand};
use ferromq_client::admin::AdminClient;
use ferromq_protocol::code::request;

use crate::ctx::Ctx;
use crate::remote::Remote;

mod auth;
mod batch;
mod broker;
mod consumer_status;
mod group;
mod ha;
mod life;
mod message;
mod namesrv;
mod offset;
mod topic;
mod trace;
mod value;

#[derive(Args)]
pub struct AdminArgs {
    /// Name server address(es), `host:port;host:port`.
    #[arg(
        short = 'n',
        long = "namesrvAddr",
        global = true,
        default_value = "127.0.0.1:9876"
    )]
    namesrv: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Access key (ACL 2.0: the user name) for brokers that check requests; admin commands
    /// need an admin account (ACL 1.0) or a user with a policy allowing them (ACL 2.0).
    #[arg(long = "accessKey", global = true, requires = "secret_key")]
    access_key: Option<String>,
    /// Secret key of --accessKey (ACL 2.0: the user's password).
    #[arg(long = "secretKey", global = true, requires = "access_key")]
    secret_key: Option<String>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Brokers of every cluster.
    #[command(name = "clusterList")]
    ClusterList(broker::ClusterList),
    /// A broker's runtime figures.
    #[command(name = "brokerStatus")]
    BrokerStatus(broker::BrokerStatus),
    /// A broker's configuration.
    #[command(name = "getBrokerConfig")]
    GetBrokerConfig(broker::GetBrokerConfig),
    /// Changes a broker's configuration key (brokers that support it at run time).
    #[command(name = "updateBrokerConfig")]
    UpdateBrokerConfig(broker::UpdateBrokerConfig),
    /// Copies one group's committed offsets on a topic to another group.
    #[command(name = "cloneGroupOffset")]
    CloneGroupOffset(offset::CloneGroupOffset),
    /// Drops queue entries that point below the commit log's start.
    #[command(name = "cleanExpiredCQ")]
    CleanExpiredCq(broker::Cleanup),
    /// Deletes commit-log files older than fileReservedTime now.
    #[command(name = "deleteExpiredCommitLog")]
    DeleteExpiredCommitLog(broker::Cleanup),
    /// Deletes the queues of topics the brokers no longer have.
    #[command(name = "cleanUnusedTopic")]
    CleanUnusedTopic(broker::Cleanup),
    /// Delayed and timer messages waiting, per level and due-time window (FerroMQ).
    #[command(name = "delayStatus")]
    DelayStatus(broker::DelayStatus),
    /// Undecided transactions with their age and check count (FerroMQ).
    #[command(name = "transactionStatus")]
    TransactionStatus(broker::TransactionStatus),

    /// Replication: each broker's role, log end and its slaves' offsets and lag.
    #[command(name = "haStatus")]
    HaStatus(ha::HaStatus),
    /// The epochs of each broker's log (controller mode).
    #[command(name = "getBrokerEpoch")]
    GetBrokerEpoch(ha::GetBrokerEpoch),
    /// The controllers: who leads, and the peers.
    #[command(name = "getControllerMetaData")]
    GetControllerMetaData(ha::GetControllerMetaData),
    /// Each broker group's master, epochs and in-sync set, from the controllers.
    #[command(name = "getSyncStateSet")]
    GetSyncStateSet(ha::GetSyncStateSet),
    /// Hands a broker group's master role to an in-sync broker (`-bn name -b id`).
    #[command(name = "electMaster")]
    ElectMaster(ha::ElectMaster),

    /// ACL 2.0: creates a user (`-t Super` for a super user).
    #[command(name = "createUser")]
    CreateUser(auth::CreateUser),
    /// ACL 2.0: changes a user's password, type or status.
    #[command(name = "updateUser")]
    UpdateUser(auth::UpdateUser),
    /// ACL 2.0: deletes a user and its policies.
    #[command(name = "deleteUser")]
    DeleteUser(auth::DeleteUser),
    /// ACL 2.0: one user.
    #[command(name = "getUser")]
    GetUser(auth::GetUser),
    /// ACL 2.0: users, by a name filter.
    #[command(name = "listUser")]
    ListUser(auth::ListUser),
    /// ACL 2.0: grants or denies a subject actions on resources.
    #[command(name = "createAcl")]
    CreateAcl(auth::PutAcl),
    /// ACL 2.0: as createAcl (entries for the same resources are replaced).
    #[command(name = "updateAcl")]
    UpdateAcl(auth::PutAcl),
    /// ACL 2.0: removes a subject's entry for a resource, or its whole ACL.
    #[command(name = "deleteAcl")]
    DeleteAcl(auth::DeleteAcl),
    /// ACL 2.0: a subject's policies.
    #[command(name = "getAcl")]
    GetAcl(auth::GetAcl),
    /// ACL 2.0: policies, by subject and resource filters.
    #[command(name = "listAcl")]
    ListAcl(auth::ListAcl),

    /// Takes write permission from a broker's topics in the name servers' routes, so that
    /// clients send elsewhere (draining it before a restart).
    #[command(name = "wipeWritePerm")]
    WipeWritePerm(namesrv::WritePerm),
    /// Gives a broker's topics their write permission back in the name servers' routes.
    #[command(name = "addWritePerm")]
    AddWritePerm(namesrv::WritePerm),
    /// Sets a name-server KV config entry.
    #[command(name = "updateKvConfig")]
    UpdateKvConfig(namesrv::UpdateKvConfig),
    /// Deletes a name-server KV config entry.
    #[command(name = "deleteKvConfig")]
    DeleteKvConfig(namesrv::DeleteKvConfig),
    /// Each name server's configuration.
    #[command(name = "getNamesrvConfig")]
    GetNamesrvConfig(namesrv::GetNamesrvConfig),
    /// Changes a name server's configuration key at run time (where the server allows it).
    #[command(name = "updateNamesrvConfig")]
    UpdateNamesrvConfig(namesrv::UpdateNamesrvConfig),

    /// Creates or updates the topics a JSON file lists (Apache's `TopicConfig`s), in one request per broker.
    #[command(name = "updateTopicList")]
    UpdateTopicList(batch::UpdateList),
    /// Creates or updates the consumer groups a JSON file lists (Apache's `SubscriptionGroupConfig`s).
    #[command(name = "updateSubGroupList")]
    UpdateSubGroupList(batch::UpdateList),
    /// A consumer group's configuration on each master.
    #[command(name = "getConsumerConfig")]
    GetConsumerConfig(batch::GetConsumerConfig),
    /// ACL 2.0: copies users (all, or `-u a,b`) from one broker to another.
    #[command(name = "copyUser")]
    CopyUser(auth::CopyUser),
    /// ACL 2.0: copies policies (all, or `-s User:a,User:b`) from one broker to another.
    #[command(name = "copyAcl")]
    CopyAcl(auth::CopyAcl),

    /// Creates or updates a topic.
    #[command(name = "updateTopic")]
    UpdateTopic(topic::UpdateTopic),
    /// Changes a topic's permission, keeping its other settings.
    #[command(name = "updateTopicPerm")]
    UpdateTopicPerm(topic::UpdateTopicPerm),
    /// Deletes a topic from brokers and name servers.
    #[command(name = "deleteTopic")]
    DeleteTopic(topic::DeleteTopic),
    /// Every topic the name servers know.
    #[command(name = "topicList")]
    TopicList(topic::TopicList),
    /// A topic's route.
    #[command(name = "topicRoute")]
    TopicRoute(topic::TopicRoute),
    /// A topic's per-queue offsets.
    #[command(name = "topicStatus")]
    TopicStatus(topic::TopicStatus),
    /// The clusters a topic is on.
    #[command(name = "topicClusterList")]
    TopicClusterList(topic::TopicClusterList),

    /// Creates or updates a consumer group's configuration.
    #[command(name = "updateSubGroup")]
    UpdateSubGroup(group::UpdateSubGroup),
    /// Deletes a consumer group's configuration.
    #[command(name = "deleteSubGroup")]
    DeleteSubGroup(group::DeleteSubGroup),
    /// A consumer group's per-queue progress and lag; without -g, every group's total.
    #[command(name = "consumerProgress")]
    ConsumerProgress(group::ConsumerProgress),
    /// A consumer group's connected clients.
    #[command(name = "consumerConnection")]
    ConsumerConnection(group::ConsumerConnection),
    /// Each running consumer of a group as it reports itself: settings, subscriptions, and
    /// with -i the queues it holds (GET_CONSUMER_RUNNING_INFO).
    #[command(name = "consumerStatus")]
    ConsumerStatus(consumer_status::ConsumerStatus),
    /// A producer group's connected clients.
    #[command(name = "producerConnection")]
    ProducerConnection(group::ProducerConnection),
    /// Every producer connected to the brokers, by group.
    #[command(name = "producer")]
    Producer(group::Producer),

    /// Moves a consumer group's offsets on a topic to a point in time.
    #[command(name = "resetOffsetByTime")]
    ResetOffsetByTime(offset::ResetOffsetByTime),
    /// Moves a consumer group's offsets on a topic to the queues' ends.
    #[command(name = "skipAccumulatedMessage")]
    SkipAccumulatedMessage(offset::SkipAccumulatedMessage),

    /// Messages by offset id (or unique id with -t); with -g/-d a consumer consumes them.
    #[command(name = "queryMsgById")]
    QueryMsgById(message::QueryMsgById),
    /// A message by its unique id within a topic; with -g/-d a consumer consumes it.
    #[command(name = "queryMsgByUniqueKey")]
    QueryMsgByUniqueKey(message::QueryMsgByUniqueKey),
    /// Messages of a topic carrying a key.
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey(message::QueryMsgByKey),
    /// A message by queue and offset.
    #[command(name = "queryMsgByOffset")]
    QueryMsgByOffset(message::QueryMsgByOffset),
    /// A message's trace, as clients with tracing on wrote it: its send and each consumption.
    #[command(name = "queryMsgTraceById")]
    QueryMsgTraceById(trace::QueryMsgTraceById),
    /// A message's life from the brokers' records: stored, waited, pulled, consumed, retried.
    #[command(name = "messageLife")]
    MessageLife(life::MessageLife),
    /// Sends one message.
    #[command(name = "sendMessage")]
    SendMessage(message::SendMessage),
    /// Prints a topic's stored messages, oldest first, without committing any offset.
    #[command(name = "consumeMessage")]
    ConsumeMessage(message::ConsumeMessage),
    /// Sends a group's dead letters back to its retry topic, once each (FerroMQ).
    #[command(name = "resendDlq")]
    ResendDlq(message::ResendDlq),
    /// Withdraws a delayed or timer message before it is due, by the recall handle its send
    /// returned (Apache 5.3.1's RECALL_MESSAGE).
    #[command(name = "recallMessage")]
    RecallMessage(message::RecallMessage),
}

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> Result<()> {
    let namesrv: Vec<String> = args
        .namesrv
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut client = AdminClient::new(namesrv.clone())?;
    let credentials = args.access_key.zip(args.secret_key);
    if let Some((ak, sk)) = &credentials {
        client = client.with_credentials(ferromq_client::Credentials::new(ak, sk));
    }
    let ctx = Ctx {
        client,
        remote: Remote::new(credentials.clone()),
        namesrv,
        credentials,
        json: args.json,
    };
    let result = dispatch(&ctx, args.command).await;
    ctx.shutdown();
    result
}

async fn dispatch(ctx: &Ctx, command: AdminCommand) -> Result<()> {
    use AdminCommand as C;
    match command {
        C::ClusterList(c) => c.run(ctx).await,
        C::BrokerStatus(c) => c.run(ctx).await,
        C::GetBrokerConfig(c) => c.run(ctx).await,
        C::UpdateBrokerConfig(c) => c.run(ctx).await,
        C::DelayStatus(c) => c.run(ctx).await,
        C::TransactionStatus(c) => c.run(ctx).await,
        C::HaStatus(c) => c.run(ctx).await,
        C::GetBrokerEpoch(c) => c.run(ctx).await,
        C::GetControllerMetaData(c) => c.run(ctx).await,
        C::GetSyncStateSet(c) => c.run(ctx).await,
        C::ElectMaster(c) => c.run(ctx).await,
        C::UpdateTopic(c) => c.run(ctx).await,
        C::UpdateTopicPerm(c) => c.run(ctx).await,
        C::DeleteTopic(c) => c.run(ctx).await,
        C::TopicList(c) => c.run(ctx).await,
        C::TopicRoute(c) => c.run(ctx).await,
        C::TopicStatus(c) => c.run(ctx).await,
        C::TopicClusterList(c) => c.run(ctx).await,
        C::UpdateSubGroup(c) => c.run(ctx).await,
        C::DeleteSubGroup(c) => c.run(ctx).await,
        C::ConsumerProgress(c) => c.run(ctx).await,
        C::ConsumerConnection(c) => c.run(ctx).await,
        C::ProducerConnection(c) => c.run(ctx).await,
        C::CloneGroupOffset(c) => c.run(ctx).await,
        C::CleanExpiredCq(c) => {
            c.run(
                ctx,
                request::CLEAN_EXPIRED_CONSUMEQUEUE,
                "CLEAN_EXPIRED_CONSUMEQUEUE",
            )
            .await
        }
        C::DeleteExpiredCommitLog(c) => {
            c.run(
                ctx,
                request::DELETE_EXPIRED_COMMITLOG,
                "DELETE_EXPIRED_COMMITLOG",
            )
            .await
        }
        C::CleanUnusedTopic(c) => {
            c.run(ctx, request::CLEAN_UNUSED_TOPIC, "CLEAN_UNUSED_TOPIC")
                .await
        }
        C::Producer(c) => c.run(ctx).await,
        C::ResetOffsetByTime(c) => c.run(ctx).await,
        C::SkipAccumulatedMessage(c) => c.run(ctx).await,
        C::QueryMsgById(c) => c.run(ctx).await,
        C::ConsumerStatus(c) => c.run(ctx).await,
        C::QueryMsgByUniqueKey(c) => c.run(ctx).await,
        C::QueryMsgByKey(c) => c.run(ctx).await,
        C::QueryMsgTraceById(c) => c.run(ctx).await,
        C::MessageLife(c) => c.run(ctx).await,
        C::QueryMsgByOffset(c) => c.run(ctx).await,
        C::SendMessage(c) => c.run(ctx).await,
        C::ConsumeMessage(c) => c.run(ctx).await,
        C::ResendDlq(c) => c.run(ctx).await,
        C::RecallMessage(c) => c.run(ctx).await,
        C::WipeWritePerm(c) => c.run(ctx, true).await,
        C::AddWritePerm(c) => c.run(ctx, false).await,
        C::UpdateKvConfig(c) => c.run(ctx).await,
        C::DeleteKvConfig(c) => c.run(ctx).await,
        C::GetNamesrvConfig(c) => c.run(ctx).await,
        C::UpdateNamesrvConfig(c) => c.run(ctx).await,
        C::UpdateTopicList(c) => c.run(ctx, true).await,
        C::UpdateSubGroupList(c) => c.run(ctx, false).await,
        C::GetConsumerConfig(c) => c.run(ctx).await,
        C::CopyUser(c) => c.run(ctx).await,
        C::CopyAcl(c) => c.run(ctx).await,
        C::CreateUser(c) => c.run(ctx).await,
        C::UpdateUser(c) => c.run(ctx).await,
        C::DeleteUser(c) => c.run(ctx).await,
        C::GetUser(c) => c.run(ctx).await,
        C::ListUser(c) => c.run(ctx).await,
        C::CreateAcl(c) => {
            c.run(
                ctx,
                request::AUTH_CREATE_ACL,
                "AUTH_CREATE_ACL",
                "create acl",
            )
            .await
        }
        C::UpdateAcl(c) => {
            c.run(
                ctx,
                request::AUTH_UPDATE_ACL,
                "AUTH_UPDATE_ACL",
                "update acl",
            )
            .await
        }
        C::DeleteAcl(c) => c.run(ctx).await,
        C::GetAcl(c) => c.run(ctx).await,
        C::ListAcl(c) => c.run(ctx).await,
    }
}
