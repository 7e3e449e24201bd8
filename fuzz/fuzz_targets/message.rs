//! Stored records (pull and query bodies) and client batch bodies.
#![no_main]
use ferromq_protocol::message::{decode_batch, record_properties, MessageExt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msgs) = MessageExt::decode_all(data) {
        for m in msgs {
            let mut buf = bytes::BytesMut::new();
            if m.topic.len() <= 127 && m.properties.len() <= i16::MAX as usize {
                m.encode(&mut buf);
                assert_eq!(record_properties(&buf), Some(m.properties.as_str()));
            }
        }
    }
    let _ = record_properties(data);
    let _ = decode_batch(data);
});
