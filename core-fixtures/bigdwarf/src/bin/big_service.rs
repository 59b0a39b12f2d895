//! A service with a deep dependency graph, parked with its sessions idle.
//!
//! Startup does what such a service does, with the crates it would use:
//! its options parsed by clap, its YAML configuration by serde_yaml, its
//! routes matched with regex, a tracing subscriber installed, an
//! async-graphql schema served by an axum Router behind tower-http layers
//! (one GraphQL query is sent through the whole stack, in process, with
//! tower's `oneshot`), an HTTP client built with reqwest, a gRPC
//! endpoint with tonic, AWS clients (S3, DynamoDB, SQS, SNS, KMS, Secrets
//! Manager, Lambda) asked once, request ids from uuid, a token hashed with sha2 and
//! encoded with base64, timestamps from chrono. Then `SESSIONS` sessions
//! (20,000 by default) each wait on their own `oneshot::Receiver` whose
//! Sender main keeps: a large, idle, healthy population (no deadlock).
//!
//! The point is the binary: a debug build with well over 100 MB of
//! `.debug_info` (docs/performance.md measures the DWARF index against
//! gdb's own symbol load on it). Runtime: multi_thread, 2 workers.

use std::time::Duration;

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use clap::Parser;
use regex::RegexSet;
use scenarios::{park, spawn_named};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tower::ServiceExt;
use tower_http::cors::CorsLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

#[derive(Parser, Debug)]
#[command(name = "big_service")]
struct Options {
    #[arg(long, env = "SESSIONS", default_value_t = 20_000)]
    sessions: usize,
    #[arg(long, default_value = "info")]
    log: String,
}

#[derive(Deserialize, Debug)]
struct Config {
    name: String,
    routes: Vec<String>,
    upstream: String,
    timeout_ms: u64,
}

const CONFIG: &str = "
name: checkout
routes: ['^/graphql$', '^/health$', '^/orders/[0-9]+$']
upstream: http://127.0.0.1:50051
timeout_ms: 2500
";

struct Query;

#[Object]
impl Query {
    async fn service(&self) -> &'static str {
        "checkout"
    }
    async fn sessions(&self, #[graphql(default = 0)] min: i32) -> i32 {
        min.max(1)
    }
}

/// One client session, idle until its reply arrives.
async fn session(i: usize, reply: oneshot::Receiver<String>) {
    let msg = park!(0, reply).await;
    println!("session {i} got {msg:?}");
}

fn app(cfg: &Config) -> Router {
    let schema = Schema::build(Query, EmptyMutation, EmptySubscription).finish();
    Router::new()
        .route_service("/graphql", async_graphql_axum::GraphQL::new(schema))
        .route("/health", get(|| async { "ok" }))
        .layer(TraceLayer::new_for_http())
        .layer(CorsLayer::permissive())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(cfg.timeout_ms),
        ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let opts = Options::parse_from(["big_service"]);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&opts.log))
        .with_writer(std::io::stderr)
        .init();
    let cfg: Config = serde_yaml::from_str(CONFIG).expect("config");
    let routes = RegexSet::new(&cfg.routes).expect("routes");
    assert!(routes.is_match("/orders/42") && !routes.is_match("/admin"));
    let token = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(cfg.name.as_bytes()));
    let request_id = uuid::Uuid::new_v4();
    let started = chrono::Utc::now().to_rfc3339();
    tracing::info!(%request_id, %started, token = %token, "starting {}", cfg.name);

    // one real request through the whole stack (router, layers, GraphQL)
    let query = json!({"query": "{ service sessions(min: 3) }"}).to_string();
    let resp = app(&cfg)
        .oneshot(
            Request::post("/graphql")
                .header("content-type", "application/json")
                .body(Body::from(query))
                .unwrap(),
        )
        .await
        .expect("graphql request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["data"]["service"], "checkout", "{answer}");
    let _client = reqwest::Client::builder().timeout(Duration::from_millis(cfg.timeout_ms)).build().unwrap();
    // the gRPC upstream's endpoint (a lazy Channel would spawn tower's
    // Buffer worker, a task of tonic's that the truth cannot name)
    let _upstream = tonic::transport::Endpoint::from_shared(cfg.upstream.clone())
        .unwrap()
        .timeout(Duration::from_millis(cfg.timeout_ms));
    let _base = url::Url::parse(&cfg.upstream).unwrap();
    // the AWS clients, each asked once: with no HTTP client in this build
    // the SDK answers with an error (in a task of its own: a panic there
    // would not take main down)
    macro_rules! aws_client {
        ($sdk:ident) => {
            $sdk::Client::from_conf(
                $sdk::Config::builder()
                    .region($sdk::config::Region::new("eu-west-1"))
                    .endpoint_url("http://127.0.0.1:9")
                    .credentials_provider($sdk::config::Credentials::new("AKID", "SECRET", None, None, "static"))
                    .build(),
            )
        };
    }
    let (s3, ddb, sqs) = (aws_client!(aws_sdk_s3), aws_client!(aws_sdk_dynamodb), aws_client!(aws_sdk_sqs));
    let (sns, kms) = (aws_client!(aws_sdk_sns), aws_client!(aws_sdk_kms));
    let (secrets, lambda) = (aws_client!(aws_sdk_secretsmanager), aws_client!(aws_sdk_lambda));
    let asked = tokio::spawn(async move {
        let q = "http://127.0.0.1:9/q";
        [
            s3.get_object().bucket("orders").key("42").send().await.is_err(),
            s3.put_object().bucket("orders").key("43").send().await.is_err(),
            s3.list_objects_v2().bucket("orders").send().await.is_err(),
            s3.head_object().bucket("orders").key("42").send().await.is_err(),
            s3.delete_object().bucket("orders").key("42").send().await.is_err(),
            ddb.get_item().table_name("sessions").send().await.is_err(),
            ddb.put_item().table_name("sessions").send().await.is_err(),
            ddb.query().table_name("sessions").send().await.is_err(),
            ddb.scan().table_name("sessions").send().await.is_err(),
            ddb.update_item().table_name("sessions").send().await.is_err(),
            sqs.receive_message().queue_url(q).send().await.is_err(),
            sqs.send_message().queue_url(q).message_body("hi").send().await.is_err(),
            sqs.delete_message().queue_url(q).send().await.is_err(),
            sns.publish().topic_arn("arn:aws:sns:eu-west-1:1:orders").message("hi").send().await.is_err(),
            kms.decrypt().send().await.is_err(),
            secrets.get_secret_value().secret_id("db").send().await.is_err(),
            lambda.invoke().function_name("settle").send().await.is_err(),
        ]
        .iter()
        .all(|e| *e)
    })
    .await;
    tracing::info!(?asked, "aws clients asked");

    let n = opts.sessions;
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = oneshot::channel::<String>();
        senders.push(tx);
        handles.push(spawn_named(&format!("session-{i}"), session(i, rx)));
    }
    let expected: Vec<_> = handles.iter().map(|h| (h.id(), 1)).collect();
    scenarios::wait_parked(&expected).await;

    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "resources": [
                {"kind": "oneshot", "name": "session replies", "count": n,
                 "note": "every sender is alive in main; nothing is ever sent"},
            ],
        }),
    );
    let _keep = (senders, handles, _client, _upstream);
    std::future::pending::<()>().await;
}
