//! An inherited listening socket (systemd socket activation: `LISTEN_FDS`, `LISTEN_PID`).

use std::process::Command;

use intralb_test_support::*;

/// Binds a socket, puts it on fd 3, sets LISTEN_FDS/LISTEN_PID and execs the example (same pid),
/// as systemd does; prints the port first.
const ACTIVATE: &str = r#"
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
print("activation port", s.getsockname()[1], flush=True)
if s.fileno() == 3:
    os.set_inheritable(3, True)
else:
    os.dup2(s.fileno(), 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], [sys.argv[1]])
"#;

#[tokio::test]
async fn an_inherited_socket_is_served_instead_of_binding() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is needed to pass a socket the way systemd does");
        return;
    }
    let mut command = Command::new("python3");
    command
        .args(["-c", ACTIVATE])
        .arg(example_binary("hello"))
        // If the socket were ignored, this address would fail the test.
        .env("INTRALB_ADDR", "127.0.0.1:1");
    let hello = Example::run("hello", command);
    let output = hello.output();
    let port = output
        .lines()
        .find_map(|line| line.strip_prefix("activation port "))
        .expect("the activating script printed its port");
    assert_eq!(hello.addr.port().to_string(), port, "{output}");
    let reply = fetch(hello.addr, "/").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hello World"));
    let (status, output) = hello.stop();
    assert!(status.success(), "{output}");
}
