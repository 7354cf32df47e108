//! The wire decoder: `protocol::parse_line` on any bytes, then the rendering of every response
//! it produced. Properties: it never panics, every rendered line is one JSON value ending in
//! a newline, and a batch is never longer than `MAX_BATCH`.
#![no_main]

use ari::protocol::{self, Incoming, MAX_BATCH};
use libfuzzer_sys::fuzz_target;

fn check_line(out: &[u8]) {
    assert_eq!(
        out.last(),
        Some(&b'\n'),
        "a rendered line ends in a newline"
    );
    let body = &out[..out.len() - 1];
    assert!(!body.contains(&b'\n'), "a rendered line holds one line");
    serde_json::from_slice::<serde_json::Value>(body).expect("a rendered line is JSON");
}

fuzz_target!(|data: &[u8]| {
    match protocol::parse_line(data) {
        Incoming::Single(Ok(req)) => {
            let _ = serde_json::to_vec(&req.params);
            let _ = ari::protocol::Method::from_name(&req.method);
            let resp = protocol::Response::result(req.id, req.params);
            check_line(&protocol::render(&resp));
        }
        Incoming::Single(Err(resp)) => {
            assert!(resp.rpc_error().is_some(), "a refusal is an error response");
            check_line(&protocol::render(&resp));
        }
        Incoming::Batch(items) => {
            assert!(!items.is_empty() && items.len() <= MAX_BATCH);
            let responses: Vec<_> = items
                .into_iter()
                .map(|item| match item {
                    Ok(req) => protocol::Response::result(req.id, req.params),
                    Err(resp) => resp,
                })
                .collect();
            check_line(&protocol::render_batch(&responses));
        }
    }
});
