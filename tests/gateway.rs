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
