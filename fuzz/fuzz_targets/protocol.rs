//! otpgated's socket protocol and the `database` connection string: never
//! panic; a frame that decodes re-encodes to a frame that decodes to the
//! same message; the authorization answers every request from any caller.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_core::config::conninfo::ConnInfo;
use otpgate_core::fleet::access::{self, Caller, Session};
use otpgate_core::fleet::protocol::{self, Request, Response};

fuzz_target!(|data: &[u8]| {
    // A stream of frames, as the daemon reads it.
    let mut stream = data;
    while let Ok(payload) = protocol::read_frame(&mut stream) {
        if let Ok(req) = protocol::decode::<Request>(&payload) {
            let bytes = protocol::encode(&req).expect("a decoded request encodes");
            let again = protocol::read_frame(&mut bytes.as_slice()).expect("and frames");
            assert_eq!(protocol::decode::<Request>(&again).expect("and decodes"), req);
            for caller in [Caller::Root, Caller::User { uid: 1000 }] {
                let _ = access::decide(caller, &req, Some(1000), &Session::default());
            }
        }
        let _ = protocol::decode::<Response>(&payload);
    }
    // Raw payloads too (most inputs have no valid header).
    let _ = protocol::decode::<Request>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(info) = ConnInfo::parse(text) {
            let _ = info.sslmode();
        }
    }
});
