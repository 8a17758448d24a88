//! Test helper: speaks to otpgated directly, as any process could.
//!
//! usage: fleet_client SOCKET            one JSON request per stdin line;
//!                                       prints each response's JSON
//!        fleet_client SOCKET --raw      sends stdin's bytes as they are and
//!                                       prints what comes back (lossy)

use otpgate_core::fleet::protocol;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(socket) = args.get(1) else {
        eprintln!("usage: fleet_client SOCKET [--raw]");
        std::process::exit(2);
    };
    let mut stream = UnixStream::connect(socket).unwrap_or_else(|e| {
        println!("connect failed: {e}");
        std::process::exit(1)
    });
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let mut input = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut input);
    if args.get(2).map(String::as_str) == Some("--raw") {
        let _ = stream.write_all(&input);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut back = Vec::new();
        let _ = stream.read_to_end(&mut back);
        let text = back
            .get(protocol::HEADER_LEN..)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        println!("{text}");
        return;
    }
    for line in String::from_utf8_lossy(&input).lines() {
        let frame = protocol::frame(line.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = stream.write_all(&frame) {
            println!("write failed: {e}");
            return;
        }
        match protocol::read_frame(&mut stream) {
            Ok(payload) => println!("{}", String::from_utf8_lossy(&payload)),
            Err(e) => {
                println!("read failed: {e}");
                return;
            }
        }
    }
}
