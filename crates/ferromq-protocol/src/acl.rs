//! Request signatures of RocketMQ's ACL: clients add `AccessKey` and `Signature`, an
//! HMAC-SHA1 with the secret key over the values of all extension fields but `Signature`,
//! in key order, followed by the body, in standard base64.

use base64::Engine;
use hmac::{Hmac, Mac};

use crate::RemotingCommand;

pub const ACCESS_KEY: &str = "AccessKey";
pub const SIGNATURE: &str = "Signature";
/// Left out of the signed content, as Apache's broker leaves it out.
const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";

/// The signature a client computes for `req` with `secret_key` (without
/// `_UNIQUE_KEY_QUERY`, which clients up to 4.9.3 add after signing).
pub fn signature(req: &RemotingCommand, secret_key: &str) -> String {
    sign_fields(req, secret_key, false)
}

/// The signature over every field but `Signature`, as clients newer than 4.9.3 sign.
pub fn signature_with_all_fields(req: &RemotingCommand, secret_key: &str) -> String {
    sign_fields(req, secret_key, true)
}

fn sign_fields(req: &RemotingCommand, secret_key: &str, with_unique_key_query: bool) -> String {
    let mut fields: Vec<(&str, &str)> = req
        .ext_fields
        .iter()
        .filter(|(k, _)| *k != SIGNATURE && (with_unique_key_query || *k != UNIQUE_KEY_QUERY))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    fields.sort_unstable_by_key(|(k, _)| *k);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC takes keys of any length");
    for (_, value) in fields {
        mac.update(value.as_bytes());
    }
    mac.update(&req.body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The 5.x clients' gRPC signature: hex HMAC-SHA1 of their `x-mq-date-time` value (the
/// Java and Go clients send it in upper case, Python in lower case).
pub fn grpc_signature(secret_key: &str, date_time: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(date_time.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The parts of a gRPC `authorization` header:
/// `MQv2-HMAC-SHA1 Credential=<ak>, SignedHeaders=x-mq-date-time, Signature=<hex>`.
pub fn parse_grpc_authorization(header: &str) -> Option<(&str, &str)> {
    let rest = header.trim().strip_prefix("MQv2-HMAC-SHA1")?;
    let mut credential = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    // Apache's clients send the credential as `ak` (older ones `ak/…`): the key is first.
    Some((credential?.split('/').next()?, signature?))
}

/// Adds the access key and the signature, as the clients' ACL hooks do.
pub fn sign(req: &mut RemotingCommand, access_key: &str, secret_key: &str) {
    req.ext_fields
        .insert(ACCESS_KEY.to_string(), access_key.to_string());
    let sig = signature(req, secret_key);
    req.ext_fields.insert(SIGNATURE.to_string(), sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_go_clients_test_vector() {
        // rocketmq-client-go's interceptor_test: HMAC-SHA1 of this text with this key.
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"adiaushdiaushd").unwrap();
        mac.update(b"Hello RocketMQ Client ACL Feature");
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, "tAb/54Rwwcq+pbH8Loi7FWX4QSQ=");
        // A request signs its field values in key order, then its body.
        let req = RemotingCommand::request(10)
            .with_field("b", "2")
            .with_field("AccessKey", "A")
            .with_field("a", "1")
            .with_field("_UNIQUE_KEY_QUERY", "skipped")
            .with_body(&b"body"[..]);
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"k").unwrap();
        mac.update(b"A12body");
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(signature(&req, "k"), want);
        let mut signed = req.clone();
        sign(&mut signed, "A", "k");
        assert_eq!(signed.field(SIGNATURE), Some(want.as_str()));
    }
}
