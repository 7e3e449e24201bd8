//! Frames and both header serializations: any bytes decode to frames or an error, never
//! a panic, and a decoded frame re-encodes to something that decodes the same way.
#![no_main]
use bytes::BytesMut;
use ferromq_protocol::RemotingCommand;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = RemotingCommand::decode_frame(&mut buf, 1 << 20) {
        let mut again = BytesMut::from(&cmd.to_bytes()[..]);
        let back = RemotingCommand::decode_frame(&mut again, 1 << 24).expect("re-encoded frame decodes").expect("whole frame");
        assert_eq!(back.code, cmd.code);
        assert_eq!(back.ext_fields, cmd.ext_fields);
        assert_eq!(back.body, cmd.body);
    }
});
