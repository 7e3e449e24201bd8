//! The stored message record (Apache's `MessageExt` V1 encoding), message properties,
//! message ids and the client batch body.
//!
//! ```text
//! | TOTALSIZE i32 | MAGIC i32 | BODYCRC i32 | QUEUEID i32 | FLAG i32 | QUEUEOFFSET i64 |
//! | PHYSICALOFFSET i64 | SYSFLAG i32 | BORNTIMESTAMP i64 | BORNHOST 8|20 | STORETIMESTAMP i64 |
//! | STOREHOST 8|20 | RECONSUMETIMES i32 | PREPARED_TX_OFFSET i64 | BODYLEN i32 | BODY |
//! | TOPICLEN u8 | TOPIC | PROPLEN i16 | PROPERTIES |
//! ```
//! Pull replies are a plain concatenation of these records exactly as stored.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

/// V1 magic: one-byte topic length. The only one clients decode.
pub const MAGIC_V1: i32 = 0xDAA320A7_u32 as i32;
/// V2 magic: two-byte topic length (Apache writes it only for topics over 127 bytes).
pub const MAGIC_V2: i32 = 0xDAA320AB_u32 as i32;
/// Magic of the blank record that fills the end of a commit-log segment.
pub const BLANK_MAGIC: i32 = 0xCBD43194_u32 as i32;
/// Offset of QUEUEOFFSET in a record.
pub const QUEUE_OFFSET_POS: usize = 20;
/// Offset of PHYSICALOFFSET in a record.
pub const PHYSICAL_OFFSET_POS: usize = 28;
/// Offset of SYSFLAG in a record.
pub const SYS_FLAG_POS: usize = 36;
/// Offset of BORNHOST in a record.
const BORN_HOST_POS: usize = 48;
/// Largest topic a V1 record can carry.
pub const MAX_TOPIC_BYTES: usize = 127;
/// Largest properties string (i16 length).
pub const MAX_PROPERTIES_BYTES: usize = i16::MAX as usize;

/// Message `sysFlag` bits (`MessageSysFlag.java`).
pub mod sys_flag {
    pub const COMPRESSED: i32 = 0x1;
    pub const MULTI_TAGS: i32 = 0x2;
    pub const TRANSACTION_PREPARED: i32 = 0x4;
    pub const TRANSACTION_COMMIT: i32 = 0x8;
    pub const TRANSACTION_ROLLBACK: i32 = 0xC;
    pub const BORNHOST_V6: i32 = 0x10;
    pub const STOREHOST_V6: i32 = 0x20;
}

/// Property names (`MessageConst.java`).
pub mod property {
    pub const KEYS: &str = "KEYS";
    pub const TAGS: &str = "TAGS";
    pub const WAIT: &str = "WAIT";
    pub const DELAY: &str = "DELAY";
    pub const UNIQ_KEY: &str = "UNIQ_KEY";
    pub const CLUSTER: &str = "CLUSTER";
    pub const TRAN_MSG: &str = "TRAN_MSG";
    pub const REAL_TOPIC: &str = "REAL_TOPIC";
    pub const REAL_QID: &str = "REAL_QID";
    pub const MSG_REGION: &str = "MSG_REGION";
    pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
    pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
    pub const PGROUP: &str = "PGROUP";
    pub const TRANSACTION_ID: &str = "__transactionId__";
    pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
    pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
    pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
    pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
    pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
    pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
    pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
    pub const TRACE_ON: &str = "TRACE_ON";
    /// Request-reply: the requester's client id, where the reply goes.
    pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
    /// Request-reply: pairs a reply with its request.
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    /// `reply` on a reply message.
    pub const MSG_TYPE: &str = "MSG_TYPE";
    /// Request-reply: when the broker pushed the reply (ms).
    pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
    /// Ordered messages' key (5.x clients' message group).
    pub const SHARDING_KEY: &str = "__SHARDINGKEY";
    /// Apache 5.4's priority messages (RIP-80): 0 and up, a higher value popped first.
    pub const PRIORITY: &str = "_SYS_MSG_PRIORITY_";
    /// Apache 5.5's lite topics (RIP-83), which FerroMQ does not serve.
    pub const LITE_TOPIC: &str = "__LITE_TOPIC";
}

const NAME_VALUE_SEPARATOR: char = '\u{1}';
const PROPERTY_SEPARATOR: char = '\u{2}';

/// Iterates the `name\x01value\x02` pairs of a properties string, skipping malformed ones.
pub fn properties_iter(props: &str) -> impl Iterator<Item = (&str, &str)> {
    props.split(PROPERTY_SEPARATOR).filter_map(|pair| {
        let (k, v) = pair.split_once(NAME_VALUE_SEPARATOR)?;
        (!k.is_empty() && !v.is_empty()).then_some((k, v))
    })
}

/// One property's value.
pub fn property<'a>(props: &'a str, name: &str) -> Option<&'a str> {
    properties_iter(props)
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Appends one property to a properties string. The Java client does not end its
/// string with a separator, so one is added first when missing.
pub fn push_property(props: &mut String, name: &str, value: &str) {
    if !props.is_empty() && !props.ends_with(PROPERTY_SEPARATOR) {
        props.push(PROPERTY_SEPARATOR);
    }
    props.push_str(name);
    props.push(NAME_VALUE_SEPARATOR);
    props.push_str(value);
    props.push(PROPERTY_SEPARATOR);
}

/// A properties string without the named properties.
pub fn without_properties(props: &str, names: &[&str]) -> String {
    let mut out = String::with_capacity(props.len());
    for (k, v) in properties_iter(props) {
        if !names.contains(&k) {
            push_property(&mut out, k, v);
        }
    }
    out
}

/// Builds a properties string from pairs.
pub fn encode_properties<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        push_property(&mut s, k, v);
    }
    s
}

/// Java's `String.hashCode` over UTF-16 code units: the tag code in consume queues.
pub fn tag_hash(tag: &str) -> i64 {
    let mut h: i32 = 0;
    for unit in tag.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h as i64
}

/// CRC-32 (IEEE) masked to 31 bits, as `UtilAll.crc32`.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

/// A decoded stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageExt {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub commit_log_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body_crc: u32,
    pub body: Bytes,
    pub properties: String,
}

impl Default for MessageExt {
    fn default() -> Self {
        let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        MessageExt {
            topic: String::new(),
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            commit_log_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: unspecified,
            store_timestamp: 0,
            store_host: unspecified,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
            body: Bytes::new(),
            properties: String::new(),
        }
    }
}

fn host_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        8
    } else {
        20
    }
}

fn put_host(dst: &mut BytesMut, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => dst.put_slice(&ip.octets()),
        IpAddr::V6(ip) => dst.put_slice(&ip.octets()),
    }
    dst.put_i32(addr.port() as i32);
}

impl MessageExt {
    pub fn property(&self, name: &str) -> Option<&str> {
        property(&self.properties, name)
    }

    /// Bytes this record takes when encoded.
    pub fn encoded_len(&self) -> usize {
        4 + 4
            + 4
            + 4
            + 4
            + 8
            + 8
            + 4
            + 8
            + host_len(&self.born_host)
            + 8
            + host_len(&self.store_host)
            + 4
            + 8
            + 4
            + self.body.len()
            + 1
            + self.topic.len()
            + 2
            + self.properties.len()
    }

    /// Encodes the record; `sys_flag`'s host bits are derived from the addresses and the
    /// body CRC from the body.
    ///
    /// # Panics
    /// If the topic exceeds [`MAX_TOPIC_BYTES`] or properties exceed
    /// [`MAX_PROPERTIES_BYTES`]; callers validate both first.
    pub fn encode(&self, dst: &mut BytesMut) {
        assert!(
            self.topic.len() <= MAX_TOPIC_BYTES,
            "topic validated by caller"
        );
        assert!(
            self.properties.len() <= MAX_PROPERTIES_BYTES,
            "properties validated by caller"
        );
        let mut sys = self.sys_flag & !(sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6);
        if self.born_host.is_ipv6() {
            sys |= sys_flag::BORNHOST_V6;
        }
        if self.store_host.is_ipv6() {
            sys |= sys_flag::STOREHOST_V6;
        }
        dst.reserve(self.encoded_len());
        dst.put_i32(self.encoded_len() as i32);
        dst.put_i32(MAGIC_V1);
        dst.put_u32(body_crc(&self.body));
        dst.put_i32(self.queue_id);
        dst.put_i32(self.flag);
        dst.put_i64(self.queue_offset);
        dst.put_i64(self.commit_log_offset);
        dst.put_i32(sys);
        dst.put_i64(self.born_timestamp);
        put_host(dst, &self.born_host);
        dst.put_i64(self.store_timestamp);
        put_host(dst, &self.store_host);
        dst.put_i32(self.reconsume_times);
        dst.put_i64(self.prepared_transaction_offset);
        dst.put_i32(self.body.len() as i32);
        dst.put_slice(&self.body);
        dst.put_u8(self.topic.len() as u8);
        dst.put_slice(self.topic.as_bytes());
        dst.put_i16(self.properties.len() as i16);
        dst.put_slice(self.properties.as_bytes());
    }

    /// Decodes one record from the front of `buf`, returning it and the bytes it used.
    ///
    /// # Errors
    /// The record is truncated, its sizes disagree, or its magic is unknown.
    pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
        let mut r = RecordReader { buf, pos: 0 };
        let total = r.i32()?;
        if total < 4 || total as usize > buf.len() {
            return Err(DecodeError::Message("total size out of range"));
        }
        let mut r = RecordReader {
            buf: &buf[..total as usize],
            pos: 4,
        };
        if r.i32()? != MAGIC_V1 {
            return Err(DecodeError::Message("unknown magic code"));
        }
        let body_crc = r.i32()? as u32;
        let queue_id = r.i32()?;
        let flag = r.i32()?;
        let queue_offset = r.i64()?;
        let commit_log_offset = r.i64()?;
        let sys_flag = r.i32()?;
        let born_timestamp = r.i64()?;
        let born_host = r.host(sys_flag & sys_flag::BORNHOST_V6 != 0)?;
        let store_timestamp = r.i64()?;
        let store_host = r.host(sys_flag & sys_flag::STOREHOST_V6 != 0)?;
        let reconsume_times = r.i32()?;
        let prepared_transaction_offset = r.i64()?;
        let body_len = r.i32()?;
        if body_len < 0 {
            return Err(DecodeError::Message("negative body length"));
        }
        let body = Bytes::copy_from_slice(r.take(body_len as usize)?);
        let topic_len = r.take(1)?[0] as usize;
        let topic = std::str::from_utf8(r.take(topic_len)?)
            .map_err(|_| DecodeError::Message("topic is not UTF-8"))?
            .to_string();
        let prop_len = r.i16()?;
        if prop_len < 0 {
            return Err(DecodeError::Message("negative properties length"));
        }
        let properties = std::str::from_utf8(r.take(prop_len as usize)?)
            .map_err(|_| DecodeError::Message("properties are not UTF-8"))?
            .to_string();
        if r.pos != total as usize {
            return Err(DecodeError::Message("total size disagrees with fields"));
        }
        Ok((
            MessageExt {
                topic,
                queue_id,
                flag,
                queue_offset,
                commit_log_offset,
                sys_flag,
                born_timestamp,
                born_host,
                store_timestamp,
                store_host,
                reconsume_times,
                prepared_transaction_offset,
                body_crc,
                body,
                properties,
            },
            total as usize,
        ))
    }

    /// Decodes a concatenation of records (a pull or query body).
    pub fn decode_all(mut buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (m, used) = Self::decode(buf)?;
            out.push(m);
            buf = &buf[used..];
        }
        Ok(out)
    }

    /// The offset message id of this record.
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(self.store_host, self.commit_log_offset)
    }
}

/// Where BODYLENGTH sits in a record with these `sysFlag` bits: after the two hosts, whose
/// size depends on their IP version.
fn body_length_pos(sys: i32) -> usize {
    let host = |v6: bool| if v6 { 20 } else { 8 };
    BORN_HOST_POS
        + host(sys & sys_flag::BORNHOST_V6 != 0)
        + 8
        + host(sys & sys_flag::STOREHOST_V6 != 0)
        + 4
        + 8
}

/// The properties string of an encoded record, found without decoding the rest.
pub fn record_properties(record: &[u8]) -> Option<&str> {
    let sys = i32::from_be_bytes(
        record
            .get(SYS_FLAG_POS..SYS_FLAG_POS + 4)?
            .try_into()
            .ok()?,
    );
    let mut pos = body_length_pos(sys);
    let body_len = i32::from_be_bytes(record.get(pos..pos + 4)?.try_into().ok()?);
    pos = pos
        .checked_add(4)?
        .checked_add(usize::try_from(body_len).ok()?)?;
    let topic_len = *record.get(pos)? as usize;
    pos += 1 + topic_len;
    let prop_len = i16::from_be_bytes(record.get(pos..pos + 2)?.try_into().ok()?);
    pos += 2;
    std::str::from_utf8(record.get(pos..pos + usize::try_from(prop_len).ok()?)?).ok()
}

/// Checks that a stored record is whole: a known magic, a total size that agrees with
/// its field lengths, and a body matching its CRC. This is what tells a torn or stale
/// commit-log tail from data, as Apache's `checkMessageAndReturnSize` does.
///
/// # Errors
/// The first inconsistency found.
pub fn verify_record(record: &[u8]) -> Result<(), DecodeError> {
    let field = |pos: usize, len: usize| {
        record
            .get(pos..pos + len)
            .ok_or(DecodeError::Message("record truncated"))
    };
    let i32_at = |pos: usize| field(pos, 4).map(|b| i32::from_be_bytes(b.try_into().expect("4")));
    let total =
        usize::try_from(i32_at(0)?).map_err(|_| DecodeError::Message("negative total size"))?;
    if total != record.len() {
        return Err(DecodeError::Message("total size disagrees with the record"));
    }
    let magic = i32_at(4)?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(DecodeError::Message("unknown magic code"));
    }
    let crc = i32_at(8)? as u32;
    let sys = i32_at(SYS_FLAG_POS)?;
    let mut pos = body_length_pos(sys);
    let body_len =
        usize::try_from(i32_at(pos)?).map_err(|_| DecodeError::Message("negative body length"))?;
    pos += 4;
    let body = field(pos, body_len)?;
    pos += body_len;
    let topic_len = if magic == MAGIC_V1 {
        pos += 1;
        usize::from(field(pos - 1, 1)?[0])
    } else {
        pos += 2;
        usize::from(u16::from_be_bytes(
            field(pos - 2, 2)?.try_into().expect("2"),
        ))
    };
    pos += topic_len;
    let prop_len = usize::from(u16::from_be_bytes(field(pos, 2)?.try_into().expect("2")));
    pos += 2 + prop_len;
    if pos != total {
        return Err(DecodeError::Message("total size disagrees with fields"));
    }
    if body_crc(body) != crc {
        return Err(DecodeError::Message("body CRC mismatch"));
    }
    Ok(())
}

/// The commit-log offset a record says it is stored at.
pub fn record_physical_offset(record: &[u8]) -> Option<i64> {
    let b = record.get(PHYSICAL_OFFSET_POS..PHYSICAL_OFFSET_POS + 8)?;
    Some(i64::from_be_bytes(b.try_into().ok()?))
}

/// Writes the offsets and store time the appender assigns into an encoded record.
pub fn patch_record(
    record: &mut [u8],
    queue_offset: i64,
    physical_offset: i64,
    store_timestamp: i64,
) {
    record[QUEUE_OFFSET_POS..QUEUE_OFFSET_POS + 8].copy_from_slice(&queue_offset.to_be_bytes());
    record[PHYSICAL_OFFSET_POS..PHYSICAL_OFFSET_POS + 8]
        .copy_from_slice(&physical_offset.to_be_bytes());
    let sys = i32::from_be_bytes(
        record[SYS_FLAG_POS..SYS_FLAG_POS + 4]
            .try_into()
            .expect("4 bytes"),
    );
    let born = if sys & sys_flag::BORNHOST_V6 != 0 {
        20
    } else {
        8
    };
    let pos = BORN_HOST_POS + born;
    record[pos..pos + 8].copy_from_slice(&store_timestamp.to_be_bytes());
}

struct RecordReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> RecordReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(DecodeError::Message("record truncated"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok((&self.take(2)?[..]).get_i16())
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok((&self.take(4)?[..]).get_i32())
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok((&self.take(8)?[..]).get_i64())
    }
    fn host(&mut self, v6: bool) -> Result<SocketAddr, DecodeError> {
        let ip: IpAddr = if v6 {
            let b: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
            b.into()
        } else {
            let b: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
            b.into()
        };
        let port = self.i32()?;
        Ok(SocketAddr::new(ip, port as u16))
    }
}

/// Offset message id: hex of store IP, port (i32) and commit-log offset (i64).
pub fn offset_msg_id(store_host: SocketAddr, commit_log_offset: i64) -> String {
    let mut raw = Vec::with_capacity(28);
    match store_host.ip() {
        IpAddr::V4(ip) => raw.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => raw.extend_from_slice(&ip.octets()),
    }
    raw.extend_from_slice(&(store_host.port() as i32).to_be_bytes());
    raw.extend_from_slice(&commit_log_offset.to_be_bytes());
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut id = String::with_capacity(raw.len() * 2);
    for b in raw {
        id.push(HEX[usize::from(b >> 4)] as char);
        id.push(HEX[usize::from(b & 0xF)] as char);
    }
    id
}

/// Parses an offset message id into its store host and commit-log offset.
pub fn decode_offset_msg_id(id: &str) -> Option<(SocketAddr, i64)> {
    if !id.is_ascii() || (id.len() != 32 && id.len() != 56) {
        return None;
    }
    let bytes: Vec<u8> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let ip_len = bytes.len() - 12;
    let ip: IpAddr = if ip_len == 4 {
        <[u8; 4]>::try_from(&bytes[..4]).ok()?.into()
    } else {
        <[u8; 16]>::try_from(&bytes[..16]).ok()?.into()
    };
    let port = i32::from_be_bytes(bytes[ip_len..ip_len + 4].try_into().ok()?);
    let offset = i64::from_be_bytes(bytes[ip_len + 4..].try_into().ok()?);
    Some((SocketAddr::new(ip, port as u16), offset))
}

/// One message of a client batch body (`MessageDecoder.encodeMessage`).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEntry {
    pub flag: i32,
    pub body: Bytes,
    pub properties: String,
}

/// Decodes a SEND_BATCH_MESSAGE body.
///
/// # Errors
/// Any entry whose sizes do not fit the body.
pub fn decode_batch(mut body: &[u8]) -> Result<Vec<BatchEntry>, DecodeError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let mut r = RecordReader { buf: body, pos: 0 };
        let total = r.i32()?;
        if total < 20 || total as usize > body.len() {
            return Err(DecodeError::Message("batch entry size out of range"));
        }
        let mut r = RecordReader {
            buf: &body[..total as usize],
            pos: 4,
        };
        let _magic = r.i32()?;
        let _crc = r.i32()?;
        let flag = r.i32()?;
        let body_len = r.i32()?;
        if body_len < 0 {
            return Err(DecodeError::Message("negative batch body length"));
        }
        let msg_body = Bytes::copy_from_slice(r.take(body_len as usize)?);
        let prop_len = r.i16()?;
        if prop_len < 0 {
            return Err(DecodeError::Message("negative batch properties length"));
        }
        let properties = std::str::from_utf8(r.take(prop_len as usize)?)
            .map_err(|_| DecodeError::Message("batch properties are not UTF-8"))?
            .to_string();
        if r.pos != total as usize {
            return Err(DecodeError::Message(
                "batch entry size disagrees with fields",
            ));
        }
        out.push(BatchEntry {
            flag,
            body: msg_body,
            properties,
        });
        body = &body[total as usize..];
    }
    Ok(out)
}

/// Encodes one batch entry as clients do.
pub fn encode_batch_entry(entry: &BatchEntry, dst: &mut BytesMut) {
    let total = 4 + 4 + 4 + 4 + 4 + entry.body.len() + 2 + entry.properties.len();
    dst.put_i32(total as i32);
    dst.put_i32(0);
    dst.put_i32(0);
    dst.put_i32(entry.flag);
    dst.put_i32(entry.body.len() as i32);
    dst.put_slice(&entry.body);
    dst.put_i16(entry.properties.len() as i16);
    dst.put_slice(entry.properties.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MessageExt {
        MessageExt {
            topic: "imooc1".into(),
            queue_id: 3,
            queue_offset: 17,
            commit_log_offset: 4096,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.0.0.5:50000".parse().unwrap(),
            store_timestamp: 1_700_000_000_123,
            store_host: "127.0.0.1:10911".parse().unwrap(),
            body: Bytes::from_static(b"this is imooc1"),
            properties: encode_properties([("TAGS", "TagA"), ("UNIQ_KEY", "ABC")]),
            ..Default::default()
        }
    }

    #[test]
    fn record_round_trips_with_crc() {
        let m = sample();
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        assert_eq!(buf.len(), m.encoded_len());
        assert_eq!(buf.len(), 84 + 4 + 14 + 1 + 6 + 2 + m.properties.len());
        let (back, used) = MessageExt::decode(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(back.body_crc, body_crc(b"this is imooc1"));
        assert_eq!(
            MessageExt {
                body_crc: 0,
                ..back
            },
            m
        );
    }

    #[test]
    fn ipv6_hosts_set_flags_and_round_trip() {
        let mut m = sample();
        m.store_host = "[::1]:10911".parse().unwrap();
        m.born_host = "[::1]:40000".parse().unwrap();
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        let (back, _) = MessageExt::decode(&buf).unwrap();
        assert_eq!(
            back.sys_flag & (sys_flag::BORNHOST_V6 | sys_flag::STOREHOST_V6),
            0x30
        );
        assert_eq!(back.store_host, m.store_host);
        assert_eq!(buf.len(), m.encoded_len());
    }

    #[test]
    fn record_properties_are_found_in_place() {
        for store_host in ["127.0.0.1:10911", "[::1]:10911"] {
            let mut m = sample();
            m.store_host = store_host.parse().unwrap();
            let mut buf = BytesMut::new();
            m.encode(&mut buf);
            assert_eq!(record_properties(&buf), Some(m.properties.as_str()));
            assert_eq!(record_properties(&buf[..buf.len() - 1]), None);
        }
        assert_eq!(record_properties(&[0u8; 10]), None);
    }

    #[test]
    fn patch_record_sets_offsets_and_store_time() {
        let m = sample();
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        patch_record(&mut buf, 99, 123456, 5);
        let (back, _) = MessageExt::decode(&buf).unwrap();
        assert_eq!(
            (
                back.queue_offset,
                back.commit_log_offset,
                back.store_timestamp
            ),
            (99, 123456, 5)
        );
    }

    #[test]
    fn truncated_record_is_an_error_at_every_cut() {
        let mut buf = BytesMut::new();
        sample().encode(&mut buf);
        for cut in 0..buf.len() {
            assert!(MessageExt::decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn offset_msg_id_round_trips() {
        let id = offset_msg_id("127.0.0.1:10911".parse().unwrap(), 0x1234);
        assert_eq!(id, "7F00000100002A9F0000000000001234");
        assert_eq!(
            decode_offset_msg_id(&id),
            Some(("127.0.0.1:10911".parse().unwrap(), 0x1234))
        );
        assert_eq!(decode_offset_msg_id("zz"), None);
        assert_eq!(decode_offset_msg_id(&"G".repeat(32)), None);
    }

    #[test]
    fn tag_hash_matches_java_string_hash_code() {
        assert_eq!(tag_hash("TagA"), 2598919);
        assert_eq!(tag_hash(""), 0);
        // "中" is one UTF-16 unit, 0x4E2D.
        assert_eq!(tag_hash("中"), 0x4E2D);
    }

    #[test]
    fn properties_parse_like_java() {
        let p = "KEYS\u{1}a b\u{2}\u{1}x\u{2}EMPTY\u{1}\u{2}TAGS\u{1}T\u{2}";
        let pairs: Vec<_> = properties_iter(p).collect();
        assert_eq!(pairs, vec![("KEYS", "a b"), ("TAGS", "T")]);
        assert_eq!(property(p, "TAGS"), Some("T"));
    }

    #[test]
    fn pushing_onto_a_java_style_string_without_trailing_separator_keeps_the_last_value() {
        let mut java = "KEYS\u{1}k1\u{2}TAGS\u{1}TagA".to_string();
        push_property(&mut java, "CLUSTER", "DefaultCluster");
        assert_eq!(property(&java, "TAGS"), Some("TagA"));
        assert_eq!(property(&java, "CLUSTER"), Some("DefaultCluster"));
        let mut go = "TAGS\u{1}TagA\u{2}".to_string();
        push_property(&mut go, "CLUSTER", "C");
        assert_eq!(go, "TAGS\u{1}TagA\u{2}CLUSTER\u{1}C\u{2}");
    }

    #[test]
    fn properties_can_be_removed_by_name() {
        let p = encode_properties([("A", "1"), ("DELAY", "3"), ("B", "2")]);
        assert_eq!(
            without_properties(&p, &["DELAY"]),
            encode_properties([("A", "1"), ("B", "2")])
        );
    }

    #[test]
    fn batch_round_trips_and_rejects_bad_sizes() {
        let entries = vec![
            BatchEntry {
                flag: 0,
                body: Bytes::from_static(b"one"),
                properties: encode_properties([("KEYS", "k1")]),
            },
            BatchEntry {
                flag: 7,
                body: Bytes::from_static(b""),
                properties: String::new(),
            },
        ];
        let mut buf = BytesMut::new();
        for e in &entries {
            encode_batch_entry(e, &mut buf);
        }
        assert_eq!(decode_batch(&buf).unwrap(), entries);
        for cut in 1..buf.len() {
            if cut == buf.len() - (4 * 5 + 2) {
                continue; // a cut exactly between entries is a valid shorter batch
            }
            assert!(decode_batch(&buf[..cut]).is_err(), "cut at {cut}");
        }
    }
}
