//! The matrix's channel cycle on a current_thread runtime driven by an
//! explicit `Runtime::block_on` in `main`: `parser` sends parsed documents
//! to `indexer` through `mpsc::channel(1)`, `indexer` sends index updates
//! back the same way, and each stage pushes its whole batch before draining
//! its own inbox. Both end up in their second `Sender::send(..).await`, the
//! send itself inside a nested async fn (`forward_doc`, `push_update`: 2-level
//! chains).
//!
//! Truth: `cycle` = [parser, indexer], one `deadlock` diagnosis.
//! Runtime: current_thread.

use mscen::{park, Json, Task};
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

/// Hand one parsed document to the indexer.
async fn forward_doc(t: Task, tx: &Sender<ParsedDoc>, doc: ParsedDoc) {
    if park!(t, 1, tx.send(doc)).await.is_err() {
        panic!("indexer gone");
    }
}

/// Hand one index update back to the parser.
async fn push_update(t: Task, tx: &Sender<IndexUpdate>, update: IndexUpdate) {
    if park!(t, 1, tx.send(update)).await.is_err() {
        panic!("parser gone");
    }
}

/// Parse a batch of documents, forward them, then handle index updates.
async fn parser(t: Task, to_indexer: Sender<ParsedDoc>, mut updates: Receiver<IndexUpdate>) {
    for path in ["a.md", "b.md"] {
        let doc = ParsedDoc { path: path.to_string(), tokens: vec!["hello".into(), path.into()] };
        park!(t, 0, forward_doc(t, &to_indexer, doc)).await;
    }
    while let Some(update) = updates.recv().await {
        println!("relink {} for {}", update.relink, update.term);
    }
}

/// Index a batch of terms, push updates back, then consume parsed docs.
async fn indexer(t: Task, to_parser: Sender<IndexUpdate>, mut docs: Receiver<ParsedDoc>) {
    for term in ["hello", "world"] {
        let update = IndexUpdate { term: term.to_string(), relink: format!("{term}.md") };
        park!(t, 0, push_update(t, &to_parser, update)).await;
    }
    while let Some(doc) = docs.recv().await {
        println!("indexed {} ({} tokens)", doc.path, doc.tokens.len());
    }
}

fn main() {
    let path = mscen::truth_path();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let (docs_tx, docs_rx) = channel::<ParsedDoc>(1);
        let (updates_tx, updates_rx) = channel::<IndexUpdate>(1);
        let (p, i) = (mscen::task("parser"), mscen::task("indexer"));
        let hp = mscen::spawn(p, parser(p, docs_tx, updates_rx));
        let hi = mscen::spawn(i, indexer(i, updates_tx, docs_rx));

        // Each stage's 4th park (level 0 + level 1 of its second send) is final.
        mscen::wait_parked(&[(p, 4), (i, 4)]).await;

        mscen::write_truth(
            &path,
            env!("CARGO_BIN_NAME"),
            "current_thread",
            vec![
                ("cycle", mscen::keys(&[p, i])),
                ("diagnoses", Json::Arr(vec![Json::obj(vec![("kind", Json::str("deadlock")), ("tasks", mscen::keys(&[p, i]))])])),
            ],
        );
        let _keep = (hp, hi);
        std::future::pending::<()>().await;
    });
}
