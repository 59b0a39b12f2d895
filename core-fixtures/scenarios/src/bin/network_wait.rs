//! Negative control: tasks parked on network I/O. Nothing is stuck in the
//! waker-graph sense -- the kernel (a client connecting, the peer writing)
//! can wake them at any time -- so the diagnoses are empty.
//!
//! - `acceptor` awaits `TcpListener::accept()` on 127.0.0.1:0.
//! - `reader` awaits `read()` on a connected `TcpStream` whose peer (a std
//!   `TcpStream` kept by main) never writes.
//! - `conn_keeper` owns nothing but sleeps an hour in a loop (a timer next to
//!   the I/O waits).
//!
//! Resources of kind `"io"` (an addition to the resource kinds) name the
//! socket, with its local address in `"addr"`.
//!
//! Runtime: multi_thread, 2 workers.

use std::os::fd::AsRawFd;
use std::time::Duration;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

async fn acceptor(listener: TcpListener) {
    loop {
        let (sock, peer) = park!(0, listener.accept()).await.unwrap();
        println!("accepted {peer}");
        drop(sock);
    }
}

async fn reader(mut stream: TcpStream) {
    let mut buf = [0u8; 512];
    loop {
        let n = park!(0, stream.read(&mut buf)).await.unwrap();
        if n == 0 {
            break;
        }
    }
}

async fn conn_keeper() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen_addr = listener.local_addr().unwrap();
    let listen_fd = listener.as_raw_fd();

    // A connected pair: main keeps the std client end and never writes.
    let side = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = std::net::TcpStream::connect(side.local_addr().unwrap()).unwrap();
    let (server_end, _) = side.accept().await.unwrap();
    drop(side);
    let stream_addr = server_end.local_addr().unwrap();
    let stream_fd = server_end.as_raw_fd();

    let a = spawn_named("acceptor", acceptor(listener));
    let r = spawn_named("reader", reader(server_end));
    let k = spawn_named("conn_keeper", conn_keeper());
    scenarios::wait_parked(&[(a.id(), 1), (r.id(), 1), (k.id(), 1)]).await;

    let [a_id, r_id, k_id] = [a.id(), r.id(), k.id()].map(scenarios::id_u64);
    scenarios::annotate(a_id, "waits_on", json!({"kind": "io", "name": "listener"}));
    scenarios::annotate(r_id, "waits_on", json!({"kind": "io", "name": "stream"}));
    scenarios::annotate(k_id, "waits_on", json!({"kind": "sleep", "name": "keeper_sleep"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [],
            "resources": [
                {"kind": "io", "name": "listener", "socket": "tcp_listener", "addr": listen_addr.to_string(), "fd": listen_fd,
                 "held_by": [a_id], "waited_by": [a_id], "held_line": null},
                {"kind": "io", "name": "stream", "socket": "tcp_stream", "addr": stream_addr.to_string(), "fd": stream_fd,
                 "peer_addr": peer.local_addr().unwrap().to_string(),
                 "held_by": [r_id], "waited_by": [r_id], "held_line": null},
                {"kind": "sleep", "name": "keeper_sleep", "held_by": [], "waited_by": [k_id], "held_line": null},
            ],
        }),
    );
    let _keep = (a, r, k, peer);
    std::future::pending::<()>().await;
}
