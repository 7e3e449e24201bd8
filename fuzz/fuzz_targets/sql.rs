//! The SQL92 filter parser and evaluator.
#![no_main]
use ferromq_broker::filter::MessageFilter;
use ferromq_protocol::message::encode_properties;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else { return };
    for kind in ["SQL92", "TAG"] {
        if let Ok(filter) = MessageFilter::compile(kind, expr) {
            let props = encode_properties([("a", "7"), ("b", "x"), ("TAGS", "TagA")]);
            let _ = filter.accepts_properties(&props);
            let _ = filter.accepts_code(0);
        }
    }
});
