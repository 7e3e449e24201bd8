//! `RemotingCommand`: one frame of the protocol, and its two header serializations.
//!
//! ```text
//! ROCKETMQ (binary) header, serialize type 1:
//! | code: i16 | language: u8 | version: i16 | opaque: i32 | flag: i32 |
//! | remark_len: i32 | remark | ext_len: i32 | (key_len: i16, key, val_len: i32, val)* |
//! ```
//! The JSON header (serialize type 0) is an object with the same names plus `extFields`.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;

/// Default frame limit, as Apache's `NettyDecoder` (16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Bit 0 of `flag`: the command is a response.
const FLAG_RESPONSE: i32 = 1;
/// Bit 1 of `flag`: the sender expects no response.
const FLAG_ONEWAY: i32 = 1 << 1;

/// Size of the fixed part of a binary header.
const BINARY_HEADER_FIXED_BYTES: usize = 21;

/// How a command's header is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    #[default]
    Json = 0,
    RocketMq = 1,
}

/// Language of the sender (`LanguageCode.java`). Unknown values are kept as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LanguageCode {
    #[default]
    Java,
    Cpp,
    Dotnet,
    Python,
    Delphi,
    Erlang,
    Ruby,
    Other,
    Http,
    Go,
    Php,
    Oms,
    Rust,
    NodeJs,
}

const LANGUAGES: [(LanguageCode, &str); 14] = [
    (LanguageCode::Java, "JAVA"),
    (LanguageCode::Cpp, "CPP"),
    (LanguageCode::Dotnet, "DOTNET"),
    (LanguageCode::Python, "PYTHON"),
    (LanguageCode::Delphi, "DELPHI"),
    (LanguageCode::Erlang, "ERLANG"),
    (LanguageCode::Ruby, "RUBY"),
    (LanguageCode::Other, "OTHER"),
    (LanguageCode::Http, "HTTP"),
    (LanguageCode::Go, "GO"),
    (LanguageCode::Php, "PHP"),
    (LanguageCode::Oms, "OMS"),
    (LanguageCode::Rust, "RUST"),
    (LanguageCode::NodeJs, "NODE_JS"),
];

impl LanguageCode {
    pub fn from_code(code: u8) -> Self {
        LANGUAGES
            .get(code as usize)
            .map_or(LanguageCode::Other, |(l, _)| *l)
    }
    pub fn code(self) -> u8 {
        LANGUAGES.iter().position(|(l, _)| *l == self).unwrap_or(7) as u8
    }
    pub fn from_name(name: &str) -> Self {
        LANGUAGES
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(LanguageCode::Other, |(l, _)| *l)
    }
    pub fn name(self) -> &'static str {
        LANGUAGES[self.code() as usize].1
    }
}

/// Header fields, stringly typed on the wire (`extFields`).
pub type ExtFields = HashMap<String, String, foldhash::fast::RandomState>;

/// One request or response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemotingCommand {
    pub code: i32,
    pub language: LanguageCode,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: ExtFields,
    pub body: Bytes,
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A new request with the given code.
    pub fn request(code: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Rust,
            version: crate::CURRENT_VERSION,
            ..Default::default()
        }
    }

    /// A response to `request` with the given code; echoes opaque and serialization.
    pub fn response_to(request: &RemotingCommand, code: i32) -> Self {
        RemotingCommand {
            code,
            language: LanguageCode::Java,
            version: crate::CURRENT_VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            serialize_type: request.serialize_type,
            ..Default::default()
        }
    }

    /// A response carrying an error code and an explanatory remark.
    pub fn error_response(request: &RemotingCommand, code: i32, remark: impl Into<String>) -> Self {
        Self::response_to(request, code).with_remark(remark)
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn with_field(mut self, key: &str, value: impl ToString) -> Self {
        self.ext_fields.insert(key.to_string(), value.to_string());
        self
    }

    /// Adds a typed header's fields.
    pub fn with_header(mut self, header: &impl crate::header::CommandHeader) -> Self {
        header.encode(&mut self.ext_fields);
        self
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// A header field by name.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key).map(String::as_str)
    }

    /// Decodes one whole frame from `src` if it holds one; `Ok(None)` means more bytes
    /// are needed (normal flow). On success the frame's bytes are consumed.
    ///
    /// # Errors
    /// A length outside `4..=max_frame_bytes` or an undecodable header; the caller should
    /// close the connection since framing is lost.
    pub fn decode_frame(
        src: &mut BytesMut,
        max_frame_bytes: usize,
    ) -> Result<Option<Self>, DecodeError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let total = i32::from_be_bytes([src[0], src[1], src[2], src[3]]) as i64;
        if total < 4 {
            return Err(DecodeError::FrameTooShort { len: total });
        }
        if total as u64 > max_frame_bytes as u64 {
            return Err(DecodeError::FrameTooLarge {
                len: total,
                max: max_frame_bytes,
            });
        }
        let total = total as usize;
        // No reserve for the whole frame here: its length is the peer's claim, and the
        // buffer grows only as bytes really arrive.
        if src.len() < 4 + total {
            return Ok(None);
        }
        src.advance(4);
        let frame = src.split_to(total).freeze();
        Self::decode_frame_body(frame).map(Some)
    }

    /// Decodes the part of a frame after its length prefix.
    pub fn decode_frame_body(mut frame: Bytes) -> Result<Self, DecodeError> {
        let frame_len = frame.len();
        if frame_len < 4 {
            return Err(DecodeError::FrameTooShort {
                len: frame_len as i64,
            });
        }
        let word = frame.get_u32();
        let ser = (word >> 24) as u8;
        let header_len = (word & 0x00FF_FFFF) as usize;
        if header_len > frame.len() {
            return Err(DecodeError::HeaderLength {
                header_len,
                frame_len,
            });
        }
        let header = frame.split_to(header_len);
        let mut cmd = match ser {
            0 => decode_json_header(&header)?,
            1 => decode_binary_header(&header)?,
            other => return Err(DecodeError::SerializeType(other)),
        };
        cmd.body = frame;
        Ok(cmd)
    }

    /// Appends the whole frame (length prefix, header, body) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        self.encode_head(dst);
        dst.extend_from_slice(&self.body);
    }

    /// Appends the frame without its body (length prefix and header), for a writer that
    /// sends `body` after it from where it already lies instead of copying it.
    pub fn encode_head(&self, dst: &mut BytesMut) {
        let start = dst.len();
        dst.put_u32(0); // total length, patched below
        dst.put_u32(0); // serialize type + header length, patched below
        let header_start = dst.len();
        match self.serialize_type {
            SerializeType::Json => encode_json_header(self, dst),
            SerializeType::RocketMq => encode_binary_header(self, dst),
        }
        let header_len = dst.len() - header_start;
        let total = (4 + header_len + self.body.len()) as u32;
        dst[start..start + 4].copy_from_slice(&total.to_be_bytes());
        let word = ((self.serialize_type as u32) << 24) | (header_len as u32 & 0x00FF_FFFF);
        dst[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
    }

    /// The whole frame as bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64 + self.body.len());
        self.encode(&mut buf);
        buf.freeze()
    }
}

#[derive(Deserialize)]
struct JsonHeaderIn {
    code: i32,
    #[serde(default)]
    language: Option<serde_json::Value>,
    #[serde(default)]
    version: Option<i32>,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default, rename = "extFields")]
    ext_fields: Option<LenientExtFields>,
}

/// `extFields` decoded straight into strings, in one pass: values are strings on the wire,
/// but peers that send numbers or booleans are accepted, and nulls dropped.
struct LenientExtFields(ExtFields);

impl<'de> Deserialize<'de> for LenientExtFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LenientExtFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<LenientExtFields, A::Error> {
                let mut fields = ExtFields::with_capacity_and_hasher(
                    map.size_hint().unwrap_or(16),
                    Default::default(),
                );
                while let Some(key) = map.next_key::<String>()? {
                    if let Some(LenientString(value)) = map.next_value::<Option<LenientString>>()? {
                        fields.insert(key, value);
                    }
                }
                Ok(LenientExtFields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A string, or any other value written out as JSON text (as fastjson does for Java).
struct LenientString(String);

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LenientString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LenientString, E> {
                Ok(LenientString(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<LenientString, E> {
                Ok(LenientString(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<LenientString, E> {
                Ok(LenientString(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LenientString, E> {
                Ok(LenientString(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LenientString, E> {
                Ok(LenientString(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<LenientString, E> {
                Ok(LenientString(serde_json::Value::from(v).to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<LenientString, A::Error> {
                let v = serde_json::Value::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(LenientString(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<LenientString, A::Error> {
                let v = serde_json::Value::deserialize(
                    serde::de::value::SeqAccessDeserializer::new(seq),
                )?;
                Ok(LenientString(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Serialize)]
struct JsonHeaderOut<'a> {
    code: i32,
    language: &'static str,
    version: i32,
    opaque: i32,
    flag: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    remark: Option<&'a str>,
    #[serde(rename = "extFields")]
    ext_fields: &'a ExtFields,
    /// Apache's Java side always writes it, and some peers (rocketmq-rust 1.0.0) refuse
    /// headers without it.
    #[serde(rename = "serializeTypeCurrentRPC")]
    serialize_type_current_rpc: &'static str,
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, DecodeError> {
    let h: JsonHeaderIn =
        serde_json::from_slice(header).map_err(|e| DecodeError::Json(e.to_string()))?;
    let language = match h.language {
        Some(serde_json::Value::String(name)) => LanguageCode::from_name(&name),
        Some(serde_json::Value::Number(n)) => {
            LanguageCode::from_code(n.as_u64().unwrap_or(7).min(255) as u8)
        }
        _ => LanguageCode::Other,
    };
    let ext_fields = h.ext_fields.map(|f| f.0).unwrap_or_default();
    Ok(RemotingCommand {
        code: h.code,
        language,
        version: h.version.unwrap_or(0),
        opaque: h.opaque,
        flag: h.flag,
        remark: h.remark.filter(|r| !r.is_empty()),
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

fn encode_json_header(cmd: &RemotingCommand, dst: &mut BytesMut) {
    let out = JsonHeaderOut {
        code: cmd.code,
        language: cmd.language.name(),
        version: cmd.version,
        opaque: cmd.opaque,
        flag: cmd.flag,
        remark: cmd.remark.as_deref(),
        ext_fields: &cmd.ext_fields,
        serialize_type_current_rpc: "JSON",
    };
    let mut writer = dst.writer();
    serde_json::to_writer(&mut writer, &out)
        .expect("serializing a header of strings and integers cannot fail");
}

/// Bounds-checked reader over a binary header.
struct HeaderReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> HeaderReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n,
                have: self.buf.len() - self.pos,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("took 2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("took 4 bytes"),
        ))
    }
    fn string(&mut self, len: i32, field: &'static str) -> Result<String, DecodeError> {
        if len < 0 {
            return Err(DecodeError::NegativeLength { field, len });
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Utf8 { field })
    }
}

fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, DecodeError> {
    if header.len() < BINARY_HEADER_FIXED_BYTES {
        return Err(DecodeError::Truncated {
            offset: 0,
            needed: BINARY_HEADER_FIXED_BYTES,
            have: header.len(),
        });
    }
    let mut r = HeaderReader {
        buf: header,
        pos: 0,
    };
    let code = r.i16()? as i32;
    let language = LanguageCode::from_code(r.take(1)?[0]);
    let version = r.i16()? as i32;
    let opaque = r.i32()?;
    let flag = r.i32()?;
    let remark_len = r.i32()?;
    let remark = r.string(remark_len, "remark")?;
    let ext_len = r.i32()?;
    if ext_len < 0 {
        return Err(DecodeError::NegativeLength {
            field: "extFields",
            len: ext_len,
        });
    }
    let ext = r.take(ext_len as usize)?;
    let mut er = HeaderReader { buf: ext, pos: 0 };
    let mut ext_fields = ExtFields::default();
    while er.pos < ext.len() {
        let key_len = er.i16()?;
        let key = er.string(key_len as i32, "extFields key")?;
        let val_len = er.i32()?;
        let val = er.string(val_len, "extFields value")?;
        ext_fields.insert(key, val);
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark: (!remark.is_empty()).then_some(remark),
        ext_fields,
        body: Bytes::new(),
        serialize_type: SerializeType::RocketMq,
    })
}

fn encode_binary_header(cmd: &RemotingCommand, dst: &mut BytesMut) {
    dst.put_i16(cmd.code as i16);
    dst.put_u8(cmd.language.code());
    dst.put_i16(cmd.version as i16);
    dst.put_i32(cmd.opaque);
    dst.put_i32(cmd.flag);
    let remark = cmd.remark.as_deref().unwrap_or("");
    dst.put_i32(remark.len() as i32);
    dst.put_slice(remark.as_bytes());
    let ext_len: usize = cmd
        .ext_fields
        .iter()
        .map(|(k, v)| 2 + k.len() + 4 + v.len())
        .sum();
    dst.put_i32(ext_len as i32);
    for (k, v) in &cmd.ext_fields {
        dst.put_i16(k.len() as i16);
        dst.put_slice(k.as_bytes());
        dst.put_i32(v.len() as i32);
        dst.put_slice(v.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ser: SerializeType) -> RemotingCommand {
        let mut cmd = RemotingCommand::request(10)
            .with_field("topic", "T")
            .with_field("queueId", 3)
            .with_remark("héllo")
            .with_body(Bytes::from_static(b"body bytes"));
        cmd.opaque = 42;
        cmd.serialize_type = ser;
        cmd
    }

    #[test]
    fn json_frame_round_trips() {
        let cmd = sample(SerializeType::Json);
        let mut buf = BytesMut::from(&cmd.to_bytes()[..]);
        let back = RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(back, cmd);
        assert!(buf.is_empty());
    }

    #[test]
    fn binary_frame_round_trips() {
        let cmd = sample(SerializeType::RocketMq);
        let mut buf = BytesMut::from(&cmd.to_bytes()[..]);
        let back = RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(back, cmd);
    }

    #[test]
    fn partial_frame_waits_for_more_bytes() {
        let bytes = sample(SerializeType::Json).to_bytes();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(
                RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn two_frames_in_one_buffer_decode_in_order() {
        let mut a = sample(SerializeType::Json);
        let mut b = sample(SerializeType::RocketMq);
        a.opaque = 1;
        b.opaque = 2;
        let mut buf = BytesMut::new();
        a.encode(&mut buf);
        b.encode(&mut buf);
        assert_eq!(
            RemotingCommand::decode_frame(&mut buf, 1 << 20)
                .unwrap()
                .unwrap()
                .opaque,
            1
        );
        assert_eq!(
            RemotingCommand::decode_frame(&mut buf, 1 << 20)
                .unwrap()
                .unwrap()
                .opaque,
            2
        );
    }

    #[test]
    fn oversized_frame_is_refused_before_allocation() {
        let mut buf = BytesMut::from(&0x7fff_ffffu32.to_be_bytes()[..]);
        let err = RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES).unwrap_err();
        assert!(matches!(err, DecodeError::FrameTooLarge { .. }));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn negative_and_tiny_lengths_are_errors() {
        for len in [-1i32, 0, 3] {
            let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
            assert!(matches!(
                RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
                Err(DecodeError::FrameTooShort { .. })
            ));
        }
    }

    #[test]
    fn header_longer_than_frame_is_an_error() {
        let mut buf = BytesMut::new();
        buf.put_i32(8);
        buf.put_u32(100);
        buf.put_u32(0);
        assert!(matches!(
            RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
            Err(DecodeError::HeaderLength { .. })
        ));
    }

    fn frame_with_header(ser: u8, header: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_i32(4 + header.len() as i32);
        buf.put_u32(((ser as u32) << 24) | header.len() as u32);
        buf.put_slice(header);
        buf
    }

    #[test]
    fn invalid_json_header_is_an_error() {
        for header in [&b"{not json"[..], b"[]", b"{\"flag\":0}", b"\xff\xfe"] {
            let mut buf = frame_with_header(0, header);
            assert!(matches!(
                RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
                Err(DecodeError::Json(_))
            ));
        }
    }

    #[test]
    fn unknown_serialize_type_is_an_error() {
        let mut buf = frame_with_header(7, b"{}");
        assert_eq!(
            RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
            Err(DecodeError::SerializeType(7))
        );
    }

    #[test]
    fn truncated_binary_headers_are_errors_at_every_cut() {
        let full = sample(SerializeType::RocketMq).to_bytes();
        let header_len = (u32::from_be_bytes(full[4..8].try_into().unwrap()) & 0xFFFFFF) as usize;
        let header = &full[8..8 + header_len];
        for cut in 0..header.len() {
            let mut buf = frame_with_header(1, &header[..cut]);
            assert!(
                RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn binary_header_with_negative_remark_length_is_an_error() {
        let mut h = BytesMut::new();
        h.put_i16(10);
        h.put_u8(9);
        h.put_i16(317);
        h.put_i32(1);
        h.put_i32(0);
        h.put_i32(-5);
        h.put_i32(0);
        let mut buf = frame_with_header(1, &h);
        assert!(matches!(
            RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
            Err(DecodeError::NegativeLength { .. })
        ));
    }

    #[test]
    fn go_style_json_header_decodes() {
        let header = br#"{"code":105,"language":"GO","version":317,"opaque":7,"flag":0,"remark":"","extFields":{"topic":"T"}}"#;
        let mut buf = frame_with_header(0, header);
        let cmd = RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(cmd.code, 105);
        assert_eq!(cmd.language, LanguageCode::Go);
        assert_eq!(cmd.opaque, 7);
        assert_eq!(cmd.remark, None);
        assert_eq!(cmd.field("topic"), Some("T"));
    }

    #[test]
    fn json_header_with_scalar_ext_values_and_numeric_language_decodes() {
        let header = br#"{"code":10,"language":1,"opaque":2,"extFields":{"queueId":3,"batch":true,"gone":null,"ratio":0.5,"neg":-4,"topic":"T"}}"#;
        let mut buf = frame_with_header(0, header);
        let cmd = RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(cmd.language, LanguageCode::from_code(1));
        assert_eq!(cmd.field("queueId"), Some("3"));
        assert_eq!(cmd.field("batch"), Some("true"));
        assert_eq!(cmd.field("ratio"), Some("0.5"));
        assert_eq!(cmd.field("neg"), Some("-4"));
        assert_eq!(cmd.field("topic"), Some("T"));
        assert_eq!(cmd.field("gone"), None, "a null is no value");
        assert_eq!(cmd.ext_fields.len(), 5);
    }

    #[test]
    fn json_header_with_nested_ext_values_keeps_them_as_json_text() {
        let header = br#"{"code":10,"extFields":{"a":{"b":"c"},"l":[1,"x"]}}"#;
        let mut buf = frame_with_header(0, header);
        let cmd = RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(cmd.field("a"), Some(r#"{"b":"c"}"#));
        assert_eq!(cmd.field("l"), Some(r#"[1,"x"]"#));
    }

    #[test]
    fn json_header_with_an_unreadable_language_decodes_as_other() {
        let mut buf = frame_with_header(0, br#"{"code":10,"language":["JAVA"]}"#);
        let cmd = RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .unwrap();
        assert_eq!(cmd.language, LanguageCode::Other);
    }

    #[test]
    fn json_header_with_ill_typed_fields_is_an_error() {
        for header in [
            &br#"{"code":10,"extFields":"x"}"#[..],
            br#"{"code":10,"extFields":[]}"#,
            br#"{"code":10,"extFields":{"a":"b""#,
        ] {
            let mut buf = frame_with_header(0, header);
            assert!(
                matches!(
                    RemotingCommand::decode_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
                    Err(DecodeError::Json(_))
                ),
                "{}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[test]
    fn json_response_has_string_ext_fields_and_response_flag() {
        let req = sample(SerializeType::Json);
        let resp = RemotingCommand::response_to(&req, 0).with_field("queueOffset", 12);
        let bytes = resp.to_bytes();
        let header_len = (u32::from_be_bytes(bytes[4..8].try_into().unwrap()) & 0xFFFFFF) as usize;
        let json: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
        assert_eq!(json["extFields"]["queueOffset"], "12");
        assert_eq!(json["flag"], 1);
        assert_eq!(json["opaque"], 42);
        assert_eq!(json["language"], "JAVA");
        assert_eq!(json["serializeTypeCurrentRPC"], "JSON", "as Java writes it");
    }
}
