//! Request and response codes, numbered as in Apache RocketMQ's `RequestCode.java` and
//! `ResponseCode.java`. Numbers are part of the wire contract and never change.

/// Declares codes as constants, and `name(code)`: the constant's name, which is Apache's
/// (`RequestCode`/`ResponseCode` field names), for logs and metric labels.
macro_rules! codes {
    ($($(#[$meta:meta])* $name:ident = $value:literal;)*) => {
        $($(#[$meta])* pub const $name: i32 = $value;)*

        /// The code's name as Apache spells it (`SEND_MESSAGE_V2`), if it is one of these.
        pub fn name(code: i32) -> Option<&'static str> {
            match code {
                $($value => Some(stringify!($name)),)*
                _ => None,
            }
        }

        /// The code's name, or its number when it has none (as Apache labels them).
        pub fn name_or_number(code: i32) -> std::borrow::Cow<'static, str> {
            name(code).map_or_else(|| code.to_string().into(), Into::into)
        }
    };
}
pub(crate) use codes;

/// Request codes (client → broker, client → name server, broker → client).
pub mod request {
    super::codes! {
        SEND_MESSAGE = 10;
        PULL_MESSAGE = 11;
        /// PULL_MESSAGE from a lite pull consumer (its sysFlag says so); served alike.
        LITE_PULL_MESSAGE = 361;
        QUERY_MESSAGE = 12;
        QUERY_CONSUMER_OFFSET = 14;
        UPDATE_CONSUMER_OFFSET = 15;
        UPDATE_AND_CREATE_TOPIC = 17;
        UPDATE_AND_CREATE_TOPIC_LIST = 18;
        UPDATE_BROKER_CONFIG = 25;
        GET_BROKER_CONFIG = 26;
        GET_ALL_TOPIC_CONFIG = 21;
        GET_BROKER_RUNTIME_INFO = 28;
        SEARCH_OFFSET_BY_TIMESTAMP = 29;
        GET_MAX_OFFSET = 30;
        GET_MIN_OFFSET = 31;
        GET_EARLIEST_MSG_STORETIME = 32;
        VIEW_MESSAGE_BY_ID = 33;
        HEART_BEAT = 34;
        UNREGISTER_CLIENT = 35;
        CONSUMER_SEND_MSG_BACK = 36;
        END_TRANSACTION = 37;
        GET_CONSUMER_LIST_BY_GROUP = 38;
        CHECK_TRANSACTION_STATE = 39;
        NOTIFY_CONSUMER_IDS_CHANGED = 40;
        LOCK_BATCH_MQ = 41;
        UNLOCK_BATCH_MQ = 42;
        CHECK_CLIENT_CONFIG = 46;
        REGISTER_BROKER = 103;
        UNREGISTER_BROKER = 104;
        GET_ROUTEINFO_BY_TOPIC = 105;
        GET_BROKER_CLUSTER_INFO = 106;
        UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200;
        UPDATE_AND_CREATE_SUBSCRIPTIONGROUP_LIST = 225;
        GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201;
        DELETE_SUBSCRIPTIONGROUP = 207;
        GET_TOPIC_STATS_INFO = 202;
        GET_CONSUMER_CONNECTION_LIST = 203;
        GET_PRODUCER_CONNECTION_LIST = 204;
        GET_ALL_TOPIC_LIST_FROM_NAMESERVER = 206;
        GET_CONSUME_STATS = 208;
        DELETE_TOPIC_IN_BROKER = 215;
        DELETE_TOPIC_IN_NAMESRV = 216;
        RESET_CONSUMER_CLIENT_OFFSET = 220;
        INVOKE_BROKER_TO_RESET_OFFSET = 222;
        GET_CONSUMER_RUNNING_INFO = 307;
        CONSUME_MESSAGE_DIRECTLY = 309;
        SEND_MESSAGE_V2 = 310;
        SEND_BATCH_MESSAGE = 320;
        /// A reply to a request message (request-reply), V1 header keys.
        RESUME_CHECK_HALF_MESSAGE = 323;
        SEND_REPLY_MESSAGE = 324;
        /// A reply to a request message, V2 (one-letter) header keys.
        SEND_REPLY_MESSAGE_V2 = 325;
        /// Broker → requesting client: the reply to its request.
        PUSH_REPLY_MESSAGE_TO_CLIENT = 326;
        GET_ALL_PRODUCER_INFO = 328;
        QUERY_CONSUME_TIME_SPAN = 303;
        CLEAN_EXPIRED_CONSUMEQUEUE = 306;
        CLONE_GROUP_OFFSET = 314;
        CLEAN_UNUSED_TOPIC = 316;
        DELETE_EXPIRED_COMMITLOG = 329;
        QUERY_SUBSCRIPTION_BY_CONSUMER = 345;
        UPDATE_AND_GET_GROUP_FORBIDDEN = 353;
        QUERY_DATA_VERSION = 322;
        PUT_KV_CONFIG = 100;
        GET_KV_CONFIG = 101;
        DELETE_KV_CONFIG = 102;
        WIPE_WRITE_PERM_OF_BROKER = 205;
        GET_KVLIST_BY_NAMESPACE = 219;
        GET_TOPICS_BY_CLUSTER = 224;
        REGISTER_TOPIC_IN_NAMESRV = 217;
        GET_BROKER_MEMBER_GROUP = 901;
        GET_SYSTEM_TOPIC_LIST_FROM_NS = 304;
        GET_UNIT_TOPIC_LIST = 311;
        GET_HAS_UNIT_SUB_TOPIC_LIST = 312;
        GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST = 313;
        VIEW_BROKER_STATS_DATA = 315;
        GET_BROKER_CONSUME_STATS = 317;
        UPDATE_NAMESRV_CONFIG = 318;
        GET_NAMESRV_CONFIG = 319;
        QUERY_CONSUME_QUEUE = 321;
        ADD_WRITE_PERM_OF_BROKER = 327;
        GET_TOPIC_CONFIG = 351;
        GET_ALL_CONSUMER_OFFSET = 43;
        GET_ALL_DELAY_OFFSET = 45;
        GET_BROKER_HA_STATUS = 907;
        EXCHANGE_BROKER_HA_INFO = 906;
        GET_BROKER_EPOCH_CACHE = 1007;
        NOTIFY_BROKER_ROLE_CHANGED = 1008;
        GET_TIMER_CHECK_POINT = 60;
        GET_TIMER_METRICS = 61;
        RECALL_MESSAGE = 370;
        QUERY_ASSIGNMENT = 400;
        SET_MESSAGE_REQUEST_MODE = 401;
        GET_ALL_MESSAGE_REQUEST_MODE = 402;
        QUERY_TOPIC_CONSUME_BY_WHO = 300;
        QUERY_TOPICS_BY_CONSUMER = 343;
        GET_SYSTEM_TOPIC_LIST_FROM_BROKER = 305;
        GET_SUBSCRIPTIONGROUP_CONFIG = 352;
        BROKER_HEARTBEAT = 904;
        /// POP consumption (Apache 5).
        POP_MESSAGE = 200050;
        ACK_MESSAGE = 200051;
        PEEK_MESSAGE = 200052;
        CHANGE_MESSAGE_INVISIBLETIME = 200053;
        NOTIFICATION = 200054;
        POLLING_INFO = 200055;
        BATCH_ACK_MESSAGE = 200151;
        INVOKE_BROKER_TO_GET_CONSUMER_STATUS = 223;
        /// Apache 5.5.1: batch deletes (`DeleteTopicListRequestBody`,
        /// `DeleteSubscriptionGroupListRequestBody`).
        DELETE_TOPIC_IN_BROKER_LIST = 5002;
        DELETE_SUBSCRIPTION_GROUP_LIST = 5003;

        /// ACL 2.0 users and policies (Apache 5.3+).
        AUTH_CREATE_USER = 3001;
        AUTH_UPDATE_USER = 3002;
        AUTH_DELETE_USER = 3003;
        AUTH_GET_USER = 3004;
        AUTH_LIST_USER = 3005;
        AUTH_CREATE_ACL = 3006;
        AUTH_UPDATE_ACL = 3007;
        AUTH_DELETE_ACL = 3008;
        AUTH_GET_ACL = 3009;
        AUTH_LIST_ACL = 3010;

        /// FerroMQ extension: undecided transactions with age and check count (JSON body).
        /// Extension codes live in 9000–9099, a range Apache RocketMQ does not use.
        FERROMQ_LIST_UNDECIDED_TRANSACTIONS = 9001;
        /// FerroMQ extension: producer groups with live connections (JSON body).
        FERROMQ_LIST_PRODUCER_GROUPS = 9002;
        /// FerroMQ extension: a message's life from the broker's records (JSON body):
        /// where it is stored, what it waits for, which groups read and consumed it.
        FERROMQ_MESSAGE_LIFE = 9003;
    }
}

/// Response codes.
pub mod response {
    super::codes! {
        SUCCESS = 0;
        SYSTEM_ERROR = 1;
        SYSTEM_BUSY = 2;
        REQUEST_CODE_NOT_SUPPORTED = 3;
        FLUSH_DISK_TIMEOUT = 10;
        SLAVE_NOT_AVAILABLE = 11;
        FLUSH_SLAVE_TIMEOUT = 12;
        MESSAGE_ILLEGAL = 13;
        SERVICE_NOT_AVAILABLE = 14;
        NO_PERMISSION = 16;
        TOPIC_NOT_EXIST = 17;
        PULL_NOT_FOUND = 19;
        PULL_RETRY_IMMEDIATELY = 20;
        PULL_OFFSET_MOVED = 21;
        QUERY_NOT_FOUND = 22;
        SUBSCRIPTION_GROUP_NOT_EXIST = 26;
        SUBSCRIPTION_PARSE_FAILED = 23;
        INVALID_PARAMETER = 29;
        CONSUMER_NOT_ONLINE = 206;
        /// POP: nothing to hand out, or nothing a handle names.
        NO_MESSAGE = 208;
        ILLEGAL_OPERATION = 604;
        POLLING_FULL = 209;
        POLLING_TIMEOUT = 210;
    }
}

/// Why FerroMQ refuses a request code Apache RocketMQ 5.5 defines, for the codes it will not
/// serve: the answer's remark is `not supported by FerroMQ: <reason>`, never a bare
/// "request type N not supported".
pub fn refusal(code: i32) -> Option<&'static str> {
    Some(match code {
        13 | 22 | 23 | 27 | 47 | 209..=214 => {
            "Apache RocketMQ 5.5 declares this code, but none of its servers, clients or tools sends or serves it"
        }
        223 => {
            "deprecated in Apache (GetConsumerStatusBody, the client's handler) and its mqadmin command is not registered; \
             consumerStatus and consumerProgress show the same offsets"
        }
        308 => {
            "no Apache tool sends it, and Apache's broker deletes the filter groups' committed offsets while answering it"
        }
        200052 | 200055 => "Apache's broker answers it, but none of Apache's clients, proxy or tools sends it",
        200056 => "it moves POP records out of Apache's RocksDB store; FerroMQ keeps POP state in its own journal",
        301 | 302 => {
            "filter servers and class filters were removed from Apache's clients in 5.0; use tag or SQL92 filters"
        }
        354 | 355 => "FerroMQ has no RocksDB store: consume queues are plain files",
        513 => "static topics (logic queues, RIP-21) are not supported: a topic's queues live on its brokers",
        902 | 903 => "the broker container (several brokers in one process) is not supported: run one broker per process",
        905 => "slaveActingMaster is not supported: in controller mode a slave is elected master instead",
        908 => "the master's flush offset is kept by FerroMQ's store itself and cannot be reset from outside",
        2001..=2003 => "cold-data flow control is not needed: FerroMQ reads cold data through the page cache without blocking sends",
        2004 => "the commit log's read mode is fixed (positioned reads through the page cache)",
        5001 => "FerroMQ has one timer engine (the on-disk timer wheel)",
        200070..=200079 => "lite topics (RIP-83, Apache 5.5) are not supported yet; use ordinary topics",
        _ => return None,
    })
}

/// The remark of a refused or unknown request code.
pub fn unsupported_remark(code: i32) -> String {
    match refusal(code) {
        Some(why) => format!("request type {code} not supported by FerroMQ: {why}"),
        None => format!(" request type {code} not supported"),
    }
}
