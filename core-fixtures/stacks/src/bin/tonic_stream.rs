//! A market-data gRPC service on tonic 0.14 (HTTP/2 over hyper 1), with
//! unary and server-streaming calls in flight and one deadlock.
//!
//! `market.v1.Quotes` (proto/market.proto; its generated code is
//! proto/market.v1.rs, included from OUT_DIR as tonic-build output is):
//! - `GetQuote` -> `get_quote` -> `price_of` waits for the price feed's
//!   `Notify`, which nobody notifies (two calls: ACME, BOLT);
//! - `Watch("*")` -> `watch` -> `snapshot` waits for the exchange's
//!   snapshot, a `oneshot` whose Sender main keeps;
//! - `Watch("ACME")` -> `watch` spawns `publish`, which sends quotes into the
//!   mpsc channel the response stream reads. The client takes one quote and
//!   then waits for its own consumer (a slow reader), so HTTP/2 flow control
//!   stops the response body, the channel fills, and `publish` stays in
//!   `send`;
//! - `Settle(ACME -> BOLT)` and `Settle(BOLT -> ACME)`: `settle` locks the
//!   `from` book, then (`move_position`) the `to` book: AB-BA on two
//!   `tokio::sync::Mutex`es, made deterministic with a `Barrier`.
//!
//! Each call runs in the HTTP/2 stream task hyper spawns for it; its handler
//! registers that task (`stacks::register_current`). Clients: the generated
//! `QuotesClient` on one tonic `Channel` (one HTTP/2 connection), each call
//! in a task of its own.
//!
//! Runtime: multi_thread, 2 workers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use scenarios::{hold, park, spawn_named};
use serde_json::json;
use stacks::market::quotes_client::QuotesClient;
use stacks::market::quotes_server::{Quotes, QuotesServer};
use stacks::market::{Quote, QuoteRequest, SettleReply, SettleRequest, WatchRequest};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Barrier, Mutex, Notify};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};

/// What a call of the `#[async_trait]` `Quotes` trait returns.
type Call<'a, T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send + 'a>>;
type QuoteStream = ReceiverStream<Result<Quote, Status>>;

struct Market {
    /// Signalled when new prices arrive; never, in this program.
    feed: Notify,
    /// Snapshot requests to the exchange; main keeps them, unanswered.
    snapshots: std::sync::Mutex<Vec<oneshot::Sender<Vec<Quote>>>>,
    /// Position per book.
    books: HashMap<String, Mutex<i64>>,
    /// Lines two settlements up, so both hold their first book.
    settling: Barrier,
    /// Quotes `publish` has produced so far.
    published: AtomicUsize,
}

impl Market {
    fn book(&self, name: &str) -> Result<&Mutex<i64>, Status> {
        self.books.get(name).ok_or_else(|| Status::not_found(format!("no book {name}")))
    }

    /// The serialized order book of `symbol` (big: a few fill HTTP/2's window).
    fn order_book(&self, _symbol: &str) -> Vec<u8> {
        vec![0x5a; 256 * 1024]
    }
}

async fn price_of(market: &Market, symbol: &str) -> i64 {
    park!(1, market.feed.notified()).await;
    symbol.len() as i64 * 1_000_000
}

async fn get_quote(market: Arc<Market>, request: Request<QuoteRequest>) -> Result<Response<Quote>, Status> {
    let symbol = request.into_inner().symbol;
    stacks::register_current(&format!("GetQuote {symbol}"), "handler", "/market.v1.Quotes/GetQuote");
    let price_micros = park!(0, price_of(&market, &symbol)).await;
    Ok(Response::new(Quote { symbol, price_micros, book: Vec::new() }))
}

async fn snapshot(market: &Market) -> Result<Vec<Quote>, Status> {
    let (tx, rx) = oneshot::channel();
    market.snapshots.lock().unwrap().push(tx);
    park!(1, rx).await.map_err(|_| Status::unavailable("exchange went away"))
}

/// Streams every new quote of `symbol` to one watcher, as fast as it reads.
async fn publish(market: Arc<Market>, symbol: String, tx: mpsc::Sender<Result<Quote, Status>>) {
    let mut price_micros = 100_000_000;
    loop {
        price_micros += 10_000;
        let quote = Quote { symbol: symbol.clone(), price_micros, book: market.order_book(&symbol) };
        market.published.fetch_add(1, Ordering::Relaxed);
        if park!(0, tx.send(Ok(quote))).await.is_err() {
            break; // the watcher hung up
        }
    }
}

async fn watch(market: Arc<Market>, request: Request<WatchRequest>) -> Result<Response<QuoteStream>, Status> {
    let symbol = request.into_inner().symbol;
    let (tx, rx) = mpsc::channel(2);
    if symbol == "*" {
        // Every symbol: start from the exchange's snapshot.
        stacks::register_current("Watch *", "handler", "/market.v1.Quotes/Watch");
        for quote in park!(0, snapshot(&market)).await? {
            tx.send(Ok(quote)).await.ok();
        }
    } else {
        spawn_named(&format!("publish {symbol}"), publish(market.clone(), symbol, tx));
    }
    Ok(Response::new(ReceiverStream::new(rx)))
}

async fn move_position(market: &Market, to: &str, quantity: i64) -> Result<i64, Status> {
    let mut position = park!(1, market.book(to)?.lock()).await; hold!(to);
    *position += quantity;
    Ok(*position)
}

async fn settle(market: Arc<Market>, request: Request<SettleRequest>) -> Result<Response<SettleReply>, Status> {
    let SettleRequest { from_book, to_book, quantity } = request.into_inner();
    let name = format!("Settle {from_book}->{to_book}");
    stacks::register_current(&name, "handler", "/market.v1.Quotes/Settle");
    let mut from = park!(0, market.book(&from_book)?.lock()).await; hold!(&from_book);
    *from -= quantity;
    park!(0, market.settling.wait()).await;
    let to_position = park!(0, move_position(&market, &to_book, quantity)).await?;
    Ok(Response::new(SettleReply { from_position: *from, to_position }))
}

/// The service: each method hands its request to the async fn above (what
/// `#[async_trait]` expands an `async fn` of the trait into, spelled out).
struct Desk {
    market: Arc<Market>,
}

impl Quotes for Desk {
    type WatchStream = QuoteStream;

    fn get_quote<'a, 'b>(&'a self, request: Request<QuoteRequest>) -> Call<'b, Quote>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(get_quote(self.market.clone(), request))
    }

    fn watch<'a, 'b>(&'a self, request: Request<WatchRequest>) -> Call<'b, QuoteStream>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(watch(self.market.clone(), request))
    }

    fn settle<'a, 'b>(&'a self, request: Request<SettleRequest>) -> Call<'b, SettleReply>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(settle(self.market.clone(), request))
    }
}

/// The gRPC server, spawned as a task of its own.
async fn serve(listener: TcpListener, desk: Desk) {
    let incoming = TcpListenerStream::new(listener);
    let server = Server::builder().add_service(QuotesServer::new(desk));
    park!(0, server.serve_with_incoming(incoming)).await.expect("tonic server");
}

async fn quote_client(mut client: QuotesClient<Channel>, symbol: &'static str) {
    let reply = park!(0, client.get_quote(QuoteRequest { symbol: symbol.into() })).await;
    drop(reply);
}

/// Watches `symbol`, handing each quote to a consumer that is slow: it waits
/// for `consumer_ready` (never signalled) before it takes the next.
async fn watch_client(mut client: QuotesClient<Channel>, symbol: &'static str, consumer_ready: Arc<Notify>) {
    let mut quotes = park!(0, client.watch(WatchRequest { symbol: symbol.into() })).await.expect("Watch").into_inner();
    while let Some(quote) = park!(0, quotes.message()).await.expect("a quote") {
        drop(quote);
        park!(0, consumer_ready.notified()).await;
    }
}

async fn settle_client(mut client: QuotesClient<Channel>, from: &'static str, to: &'static str) {
    let request = SettleRequest { from_book: from.into(), to_book: to.into(), quantity: 100 };
    let reply = park!(0, client.settle(request)).await;
    drop(reply);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    stacks::check_tokio_version();
    let path = scenarios::truth_path();
    let market = Arc::new(Market {
        feed: Notify::new(),
        snapshots: Default::default(),
        books: [("ACME", 1000), ("BOLT", 1000)].into_iter().map(|(b, n)| (b.to_string(), Mutex::new(n))).collect(),
        settling: Barrier::new(2),
        published: AtomicUsize::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let server = spawn_named("tonic::serve", serve(listener, Desk { market: market.clone() }));

    let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.expect("connect");
    let client = QuotesClient::new(channel);
    let consumer_ready = Arc::new(Notify::new());
    let clients = vec![
        ("GetQuote ACME", spawn_named("client GetQuote ACME", quote_client(client.clone(), "ACME"))),
        ("GetQuote BOLT", spawn_named("client GetQuote BOLT", quote_client(client.clone(), "BOLT"))),
        ("Watch *", spawn_named("client Watch *", watch_client(client.clone(), "*", consumer_ready.clone()))),
        ("Watch ACME", spawn_named("client Watch ACME", watch_client(client.clone(), "ACME", consumer_ready.clone()))),
        ("Settle ACME->BOLT", spawn_named("client Settle ACME->BOLT", settle_client(client.clone(), "ACME", "BOLT"))),
        ("Settle BOLT->ACME", spawn_named("client Settle BOLT->ACME", settle_client(client.clone(), "BOLT", "ACME"))),
    ];

    // Parks: get_quote and price_of 2; watch and snapshot 2; settle 3 at
    // level 0 and move_position's lock 1; publish >= 1 (one per quote); the
    // clients 1 each, but the ACME watcher 3 (watch, message, the consumer);
    // the server 1.
    let expected = [
        ("GetQuote ACME", 2),
        ("GetQuote BOLT", 2),
        ("Watch *", 2),
        ("Settle ACME->BOLT", 4),
        ("Settle BOLT->ACME", 4),
        ("publish ACME", 1),
        ("tonic::serve", 1),
        ("client GetQuote ACME", 1),
        ("client GetQuote BOLT", 1),
        ("client Watch *", 1),
        ("client Watch ACME", 3),
        ("client Settle ACME->BOLT", 1),
        ("client Settle BOLT->ACME", 1),
    ];
    scenarios::wait_named(&expected).await;
    // publish stops when the channel is full: its count stands still.
    loop {
        let before = market.published.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if market.published.load(Ordering::Relaxed) == before {
            break;
        }
    }

    for (request, c) in &clients {
        scenarios::annotate(scenarios::id_u64(c.id()), "role", json!("client"));
        scenarios::annotate(scenarios::id_u64(c.id()), "request", json!(request));
    }
    scenarios::annotate(scenarios::id_u64(server.id()), "role", json!("server"));
    let id = |name: &str| scenarios::task_id(name).unwrap();
    let (a_to_b, b_to_a, publisher) = (id("Settle ACME->BOLT"), id("Settle BOLT->ACME"), id("publish ACME"));
    scenarios::annotate(publisher, "role", json!("producer"));
    let (acme_holder, acme_line) = scenarios::holder("ACME").unwrap();
    let (bolt_holder, bolt_line) = scenarios::holder("BOLT").unwrap();
    assert_eq!((acme_holder, bolt_holder), (a_to_b, b_to_a));
    assert_eq!(market.snapshots.lock().unwrap().len(), 1, "one snapshot requested");
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "protocol": "grpc",
            "in_flight": 5,
            // Settle ACME->BOLT holds ACME and waits for BOLT, Settle BOLT->ACME
            // the other way round. Everyone else could still be woken: main keeps
            // the feed and the snapshot Sender, publish waits for the HTTP/2
            // stream to read, which waits for the client's window.
            "diagnoses": [{"kind": "deadlock", "tasks": [a_to_b, b_to_a]}],
            "resources": [
                {"kind": "mutex", "name": "book ACME", "held_by": [a_to_b], "waited_by": [b_to_a], "held_line": acme_line},
                {"kind": "mutex", "name": "book BOLT", "held_by": [b_to_a], "waited_by": [a_to_b], "held_line": bolt_line},
            ],
        }),
    );
    let _keep = (market, client, consumer_ready, clients, server);
    std::future::pending::<()>().await;
}
