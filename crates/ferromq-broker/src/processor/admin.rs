//! Messages by id and key, topic administration, broker information:
//! VIEW_MESSAGE_BY_ID, QUERY_MESSAGE, UPDATE_AND_CREATE_TOPIC(_LIST), DELETE_TOPIC_IN_BROKER,
//! GET_ALL_TOPIC_CONFIG, GET_BROKER_RUNTIME_INFO.

use std::collections::BTreeMap;

use bytes::BytesMut;
use ferromq_protocol::body::{apply_topic_attributes, TopicConfig};
use ferromq_protocol::code::response;
use ferromq_protocol::header::{
    CreateTopicRequestHeader, QueryMessageRequestHeader, TopicRequestHeader,
    ViewMessageRequestHeader,
};
use ferromq_protocol::RemotingCommand;

use super::header;
use crate::topic::validate_topic_name;
use crate::Broker;

/// Results one QUERY_MESSAGE returns at most (Apache `defaultQueryMaxNum`).
const MAX_QUERY_RESULTS: usize = 32;

impl Broker {
    pub(crate) fn view_message(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<ViewMessageRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        if h.offset < 0 {
            return RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("can not find message by the offset {}", h.offset),
            );
        }
        match self.store.store().read_message(h.offset as u64) {
            Ok(Some(record)) => {
                RemotingCommand::response_to(req, response::SUCCESS).with_body(record)
            }
            Ok(None) => RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("can not find message by the offset {}", h.offset),
            ),
            Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    pub(crate) fn query_message(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<QueryMessageRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let max = if h.unique_key_query == Some(true) {
            MAX_QUERY_RESULTS
        } else {
            (h.max_num.max(1) as usize).min(MAX_QUERY_RESULTS)
        };
        let end = if h.end_timestamp <= 0 {
            i64::MAX
        } else {
            h.end_timestamp
        };
        let store = self.store.store();
        match store.query_by_key(&h.topic, &h.key, max, h.begin_timestamp, end) {
            Ok(records) if records.is_empty() => RemotingCommand::error_response(
                req,
                response::QUERY_NOT_FOUND,
                "can not find message, maybe time range not correct",
            ),
            Ok(records) => {
                let mut body = BytesMut::new();
                for r in &records {
                    body.extend_from_slice(r);
                }
                RemotingCommand::response_to(req, response::SUCCESS)
                    .with_body(body.freeze())
                    .with_field("indexLastUpdateTimestamp", crate::now_ms())
                    .with_field("indexLastUpdatePhyoffset", store.write_offset())
            }
            Err(e) => RemotingCommand::error_response(req, response::SYSTEM_ERROR, e.to_string()),
        }
    }

    /// Answers once the name servers have the new route (as Apache does), so a client that
    /// creates a topic and then uses it never meets "no route info".
    pub(crate) async fn create_topic(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<CreateTopicRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        let requested = TopicConfig {
            topic_name: h.topic.clone(),
            read_queue_nums: h.read_queue_nums,
            write_queue_nums: h.write_queue_nums,
            perm: h.perm,
            topic_filter_type: h.topic_filter_type.unwrap_or_else(|| "SINGLE_TAG".into()),
            topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
            order: h.order.unwrap_or(false),
            attributes: Default::default(),
        };
        let config = match self.checked_topic(requested, h.attributes.as_deref().unwrap_or("")) {
            Ok(c) => c,
            Err(why) => {
                return RemotingCommand::error_response(req, response::INVALID_PARAMETER, why)
            }
        };
        self.store_topics(req, vec![config]).await
    }

    /// UPDATE_AND_CREATE_TOPIC_LIST (18): many topics in one write and one registration.
    /// Every topic is checked before any is stored. Unlike Apache, which answers SUCCESS and
    /// stores nothing more once it meets a topic already configured as asked, the others
    /// are still stored.
    pub(crate) async fn create_topic_list(&self, req: &RemotingCommand) -> RemotingCommand {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct CreateTopicListRequestBody {
            topic_config_list: Vec<TopicConfig>,
        }
        let body: CreateTopicListRequestBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => {
                return RemotingCommand::error_response(
                    req,
                    response::INVALID_PARAMETER,
                    format!("the topic list body is malformed: {e}"),
                )
            }
        };
        let mut configs = Vec::with_capacity(body.topic_config_list.len());
        for mut requested in body.topic_config_list {
            // Attributes arrive as Apache's admin sends them: `+name` to set, `-name` to
            // remove; a bare name sets.
            let changes: Vec<String> = std::mem::take(&mut requested.attributes)
                .into_iter()
                .map(|(k, v)| match k.chars().next() {
                    Some('+') => format!("{k}={v}"),
                    Some('-') => k,
                    _ => format!("+{k}={v}"),
                })
                .collect();
            let name = requested.topic_name.clone();
            match self.checked_topic(requested, &changes.join(",")) {
                Ok(c) if self.topics.get(&c.topic_name).as_ref() == Some(&c) => {}
                Ok(c) => configs.push(c),
                Err(why) => {
                    return RemotingCommand::error_response(
                        req,
                        response::INVALID_PARAMETER,
                        format!("topic {name}: {why}"),
                    )
                }
            }
        }
        if configs.is_empty() {
            return RemotingCommand::response_to(req, response::SUCCESS);
        }
        self.store_topics(req, configs).await
    }

    /// A requested topic as it will be stored: its name and queue counts checked, its
    /// permission bits masked, `attribute_changes` (`+name=value,-name`) applied to the
    /// topic's current attributes.
    fn checked_topic(
        &self,
        mut config: TopicConfig,
        attribute_changes: &str,
    ) -> Result<TopicConfig, String> {
        validate_topic_name(&config.topic_name)?;
        if !(1..=1024).contains(&config.read_queue_nums)
            || !(1..=1024).contains(&config.write_queue_nums)
        {
            return Err("queue counts must be between 1 and 1024".into());
        }
        let current = self
            .topics
            .get(&config.topic_name)
            .map(|t| t.attributes)
            .unwrap_or_default();
        config.attributes = apply_topic_attributes(&current, attribute_changes)?;
        config.perm &= 0xF;
        Ok(config)
    }

    /// Stores checked topics in one write and announces them in one registration.
    async fn store_topics(
        &self,
        req: &RemotingCommand,
        configs: Vec<TopicConfig>,
    ) -> RemotingCommand {
        let names: Vec<String> = configs.iter().map(|c| c.topic_name.clone()).collect();
        match self.topics.upsert_all(configs) {
            Ok(_) => {
                crate::register::register_topics(self, &names).await;
                RemotingCommand::response_to(req, response::SUCCESS)
            }
            Err(e) => RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("persisting the topic failed: {e}"),
            ),
        }
    }

    pub(crate) fn delete_topic(&self, req: &RemotingCommand) -> RemotingCommand {
        let h = match header::<TopicRequestHeader>(req) {
            Ok(h) => h,
            Err(resp) => return resp,
        };
        match self.remove_topic(&h.topic) {
            Ok(()) => {
                self.request_registration();
                RemotingCommand::response_to(req, response::SUCCESS)
            }
            Err(e) => RemotingCommand::error_response(
                req,
                response::SYSTEM_ERROR,
                format!("deleting the topic failed: {e}"),
            ),
        }
    }

    /// A topic's config, committed offsets, statistics and stored queues; the caller
    /// announces the change to the name servers.
    pub(crate) fn remove_topic(&self, topic: &str) -> Result<(), String> {
        self.topics.delete(topic).map_err(|e| e.to_string())?;
        self.offsets.remove_topic(topic);
        self.stats.forget_topic(topic);
        self.store
            .store()
            .delete_topic(topic)
            .map_err(|e| e.to_string())
    }

    pub(crate) fn all_topic_config(&self, req: &RemotingCommand) -> RemotingCommand {
        let body = serde_json::to_vec(&self.topics.wrapper()).expect("topic table serializes");
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body)
    }

    /// GET_BROKER_RUNTIME_INFO: Apache's keys (`clusterList` and `brokerStatus` print them;
    /// a missing key shows as `null`), with FerroMQ's figures. FerroMQ has no thread-pool
    /// queues, so their sizes and waits are 0.
    pub(crate) fn runtime_info(&self, req: &RemotingCommand) -> RemotingCommand {
        let store = self.store.store();
        let now = crate::now_ms();
        let config = self.config();
        let mut table: BTreeMap<String, String> = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            table.insert(k.to_string(), v);
        };
        put(
            "brokerVersionDesc",
            format!("FerroMQ {}", env!("CARGO_PKG_VERSION")),
        );
        put(
            "brokerVersion",
            ferromq_protocol::CURRENT_VERSION.to_string(),
        );
        put("brokerActive", "true".into());
        let (put_tps, get_tps) = self.stats.tps(now);
        put("putTps", format!("{put_tps:.1} {put_tps:.1} {put_tps:.1}"));
        put(
            "getTransferredTps",
            format!("{get_tps:.1} {get_tps:.1} {get_tps:.1}"),
        );
        put(
            "getFoundTps",
            format!("{get_tps:.1} {get_tps:.1} {get_tps:.1}"),
        );
        let puts = self.stats.puts();
        let gets = self.stats.gets();
        put("msgPutTotalTodayNow", puts.to_string());
        put("msgGetTotalTodayNow", gets.to_string());
        // FerroMQ counts from start; "morning" totals are the start's, so the day shows all.
        for k in [
            "msgPutTotalTodayMorning",
            "msgPutTotalYesterdayMorning",
            "msgGetTotalTodayMorning",
            "msgGetTotalYesterdayMorning",
        ] {
            put(k, "0".into());
        }
        put(
            "commitLogMinOffset",
            store.min_commit_log_offset().to_string(),
        );
        put("commitLogMaxOffset", store.write_offset().to_string());
        put(
            "remainHowManyDataToFlush",
            format!(
                "{} B",
                store.write_offset().saturating_sub(store.flushed_offset())
            ),
        );
        put("dispatchBehindBytes", "0".into());
        let disk = self.store.disk_used_ratio();
        put("commitLogDiskRatio", format!("{disk:.2}"));
        put("consumeQueueDiskRatio", format!("{disk:.2}"));
        put(
            &format!(
                "commitLogDiskRatio_{}",
                config.store_root.join("commitlog").display()
            ),
            format!("{disk:.2}"),
        );
        put(
            "earliestMessageTimeStamp",
            store
                .read_message(store.min_commit_log_offset())
                .ok()
                .flatten()
                .and_then(|record| ferromq_protocol::message::MessageExt::decode(&record).ok())
                .map_or(-1, |(m, _)| m.store_timestamp)
                .to_string(),
        );
        for pool in ["send", "pull", "query", "ack", "litePull"] {
            put(&format!("{pool}ThreadPoolQueueSize"), "0".into());
            put(
                &format!("{pool}ThreadPoolQueueHeadWaitTimeMills"),
                "0".into(),
            );
        }
        put("pageCacheLockTimeMills", "0".into());
        put("startAcceptSendRequestTimeStamp", "0".into());
        put("bootTimestamp", self.boot_ms.to_string());
        let up = self.started.elapsed().as_secs();
        put(
            "runtime",
            format!(
                "[ {} days, {} hours, {} minutes, {} seconds ]",
                up / 86_400,
                up / 3600 % 24,
                up / 60 % 60,
                up % 60
            ),
        );
        put("timerReadBehind", "0".into());
        put("timerOffsetBehind", "0".into());
        put("timerCongestNum", "0".into());
        put("timerEnqueueTps", "0.0".into());
        put("timerDequeueTps", "0.0".into());
        for (level, pending) in self.schedule.pending(store) {
            table.insert(
                format!("scheduleMessagePending.level{level}"),
                pending.to_string(),
            );
        }
        table.insert(
            "timerPending".to_string(),
            self.timers.pending().to_string(),
        );
        let now = crate::now_ms();
        for (label, secs) in [("1m", 60), ("10m", 600), ("1h", 3600), ("1d", 86_400)] {
            table.insert(
                format!("timerPendingWithin{label}"),
                self.timers
                    .pending_between(now, now + secs * 1000)
                    .to_string(),
            );
        }
        let body = serde_json::to_vec(&serde_json::json!({ "table": table }))
            .expect("runtime info serializes");
        RemotingCommand::response_to(req, response::SUCCESS).with_body(body)
    }
}
