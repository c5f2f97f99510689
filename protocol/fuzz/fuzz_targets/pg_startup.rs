//! libFuzzer target: decode_startup over arbitrary bytes never panics, consumes at most what
//! it was given, and decodes the same packet from exactly the bytes it consumed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::pg::{MAX_STARTUP_PACKET_LEN, StartupPacket, decode_startup};

fuzz_target!(|data: &[u8]| {
    match decode_startup(data) {
        Ok(Some((packet, used))) => {
            assert!(used >= 8 && used <= data.len() && used <= MAX_STARTUP_PACKET_LEN + 4);
            assert_eq!(
                decode_startup(&data[..used]),
                Ok(Some((packet.clone(), used)))
            );
            if let StartupPacket::Startup(message) = packet {
                assert_eq!(message.major, 3);
                let _ = message.negotiation();
            }
        }
        Ok(None) => {
            if let Some(field) = data.first_chunk::<4>() {
                assert!(data.len() < u32::from_be_bytes(*field) as usize);
            }
        }
        Err(_) => {}
    }
});
