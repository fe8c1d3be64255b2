//! The quick start, run as a user runs it.

use std::process::Command;

use intralb_test_support::*;

#[tokio::test]
async fn hello_answers_and_stops_cleanly_on_sigint() {
    let mut hello = Example::start("hello", &[]);
    let reply = fetch(hello.addr, "/").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hello World"));
    let reply = fetch_with(&h2_client(), hello.addr, "/").await;
    assert_eq!(reply.status, 200, "h2c too");

    hello.signal("INT");
    let status = hello.wait();
    assert!(
        status.success(),
        "exit status {status}; output:\n{}",
        hello.output()
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once_without_draining() {
    // A long drain delay keeps the first shutdown going.
    let mut hello = Example::start("hello", &[("INTRALB_DRAIN_DELAY", "5m")]);
    assert_eq!(fetch(hello.addr, "/").await.status, 200);
    hello.signal("TERM");
    hello.wait_for_output("shutdown signal received");
    hello.signal("TERM");
    let status = hello.wait();
    assert_eq!(status.code(), Some(130), "{}", hello.output());
}

/// Runs `hello` with one bad variable; returns its exit code, stderr and stdout.
fn run_with(var: &str, value: &str) -> (Option<i32>, String, String) {
    let output = Command::new(example_binary("hello"))
        .env(var, value)
        .env("INTRALB_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.code(),
        text(&output.stderr),
        text(&output.stdout),
    )
}

#[test]
fn a_bad_environment_value_exits_nonzero_with_a_clear_message() {
    let (code, stderr, _) = run_with("INTRALB_MAX_CONCURRENT", "abc");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "Error: INTRALB_MAX_CONCURRENT=\"abc\" is not a valid max_concurrent: invalid digit found in string"
    );
}

#[test]
fn an_unknown_duration_unit_is_rejected_before_binding() {
    let (code, stderr, stdout) = run_with("INTRALB_TIMEOUT", "5 parsecs");
    assert_eq!(code, Some(1), "{stderr}");
    let expected = "Error: INTRALB_TIMEOUT=\"5 parsecs\" is not a valid timeout";
    assert!(stderr.starts_with(expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stdout.contains("listening"), "never bound: {stdout}");
}
