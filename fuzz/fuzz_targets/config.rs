//! broker.conf: any file is either accepted or refused with an error naming the key.
#![no_main]
use ferromq_broker::config::parse_properties;
use ferromq_broker::BrokerConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(map) = parse_properties(data) else { return };
    let mut config = BrokerConfig::default();
    if let Err(e) = config.apply(&map) {
        assert!(!e.to_string().is_empty());
    }
});
