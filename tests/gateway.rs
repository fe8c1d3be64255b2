//! The gateway example: nested routers behind a bearer-token check, per-worker upstreams.

use http::Method;
use intralb_test_support::*;

#[tokio::test]
async fn the_gateway_requires_a_bearer_token_and_routes_to_users_and_products() {
    let gateway = Example::start("gateway", &[("GATEWAY_TOKEN", "s3cret")]);
    let client = client();
    let get = |path: &'static str, headers: &'static [(&'static str, &'static str)]| {
        send(&client, gateway.addr, Method::GET, path, headers, "")
    };

    let reply = get("/users/7", &[]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        get("/users/7", &[("authorization", "Bearer wrong")])
            .await
            .status,
        401
    );

    let auth: &[(&str, &str)] = &[("authorization", "Bearer s3cret")];
    let user = get("/users/7", auth).await;
    assert_eq!(user.status, 200);
    let user: serde_json::Value = serde_json::from_str(&user.body).unwrap();
    assert_eq!(user["data"]["id"], 7);
    assert!(user["worker"].is_u64(), "{user}");
    assert_eq!(get("/users", auth).await.status, 200);
    let products = get("/products", auth).await;
    assert_eq!(products.status, 200);
    assert!(products.body.contains("tea"), "{}", products.body);
    assert_eq!(get("/nowhere", auth).await.status, 404);

    let (status, output) = gateway.stop();
    assert!(status.success(), "{output}");
}

/// The example itself, in this test's process: its router, its `#[balanced]` builder and its
/// `#[db_init]`.
#[path = "../examples/gateway.rs"]
#[allow(dead_code)]
mod example;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_token_check_refuses_a_request_without_taking_a_queue_place() {
    let gate = Gate::new();
    let app = {
        let gate = gate.clone();
        example::gateway().route(
            "/hold",
            axum::routing::get(move || async move { gate.pass().await }),
        )
    };
    // The example's settings, layer and initializer; one worker and one queue place.
    let builder = example::gateway_builder().max_concurrent(1).queue(1);
    let server = builder.start(app).await.unwrap();
    let addr = server.local_addr();
    let auth: &[(&str, &str)] = &[
        ("authorization", "Bearer demo-token"),
        ("origin", "https://shop.example"),
    ];
    let client = client();
    let spawn = |path: &'static str| {
        let client = client.clone();
        tokio::spawn(async move { send(&client, addr, Method::GET, path, auth, "").await })
    };
    let holding = spawn("/hold");
    wait_for_stats(&server, "the worker busy", |s| s.busy == 1).await;
    let queued = spawn("/users/7");
    wait_for_stats(&server, "one queued", |s| s.queued == 1).await;

    // Every worker busy and the queue full: without the token, 401 (not 503)...
    let refused = send(&client, addr, Method::GET, "/users/7", &[], "").await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
    // ...and with it, shed, with the CORS header a browser needs to read the 503.
    let shed = send(&client, addr, Method::GET, "/users/7", auth, "").await;
    assert_eq!(shed.status, 503);
    assert_eq!(shed.header("access-control-allow-origin"), Some("*"));
    assert_eq!(server.stats().shed, 1);

    gate.open(1);
    assert_eq!(holding.await.unwrap().status, 200);
    let user = queued.await.unwrap();
    assert_eq!(user.status, 200);
    assert_eq!(user.header("access-control-allow-origin"), Some("*"));
    within("the stop", server.stop()).await.unwrap();
}
