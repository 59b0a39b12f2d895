//! Barbara's pipeline: a cycle of bounded channels that fills up.
//!
//! `parser` sends parsed documents to `indexer`; `indexer` sends index
//! updates back to `parser` (for re-parsing linked documents). Both channels
//! are `mpsc::channel(1)`, and each stage pushes its whole batch of output
//! before it starts draining its own inbox. The first send of each stage
//! fills the other's channel; the second send waits for capacity that only
//! the other (equally blocked) stage could free. Both tasks end up parked in
//! `Sender::send(..).await`: parser waits on indexer, indexer on parser.
//!
//! Runtime: multi_thread, 2 workers.

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::mpsc::{channel, Receiver, Sender};

#[derive(Debug)]
struct ParsedDoc {
    path: String,
    tokens: Vec<String>,
}

#[derive(Debug)]
struct IndexUpdate {
    term: String,
    relink: String,
}

/// Parse a batch of documents, forward them, then handle index updates.
async fn parser(to_indexer: Sender<ParsedDoc>, mut updates: Receiver<IndexUpdate>) {
    for path in ["a.md", "b.md"] {
        let doc = ParsedDoc { path: path.to_string(), tokens: vec!["hello".into(), path.into()] };
        park!(0, to_indexer.send(doc)).await.expect("indexer gone");
    }
    while let Some(update) = updates.recv().await {
        println!("relink {} for {}", update.relink, update.term);
    }
}

/// Index a batch of terms, push updates back, then consume parsed docs.
async fn indexer(to_parser: Sender<IndexUpdate>, mut docs: Receiver<ParsedDoc>) {
    for term in ["hello", "world"] {
        let update = IndexUpdate { term: term.to_string(), relink: format!("{term}.md") };
        park!(0, to_parser.send(update)).await.expect("parser gone");
    }
    while let Some(doc) = docs.recv().await {
        println!("indexed {} ({} tokens)", doc.path, doc.tokens.len());
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let (docs_tx, docs_rx) = channel::<ParsedDoc>(1);
    let (updates_tx, updates_rx) = channel::<IndexUpdate>(1);

    let p = spawn_named("parser", parser(docs_tx, updates_rx));
    let i = spawn_named("indexer", indexer(updates_tx, docs_rx));

    // Each stage's 2nd park! (its second send) is where it stays stuck.
    scenarios::wait_parked(&[(p.id(), 2), (i.id(), 2)]).await;

    let (p_id, i_id) = (scenarios::id_u64(p.id()), scenarios::id_u64(i.id()));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": [p_id, i_id],
            "resources": [
                {"kind": "mpsc", "name": "docs", "capacity": 1, "queued": 1,
                 "sender_blocked": [p_id], "receiver": i_id},
                {"kind": "mpsc", "name": "updates", "capacity": 1, "queued": 1,
                 "sender_blocked": [i_id], "receiver": p_id},
            ],
        }),
    );
    let _keep = (p, i);
    std::future::pending::<()>().await;
}
