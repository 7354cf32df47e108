//! Hostile clients against a real daemon: slow and idle connections next to a normal client, a
//! connection flood against the cap, and thousands of malformed connections, with the daemon's
//! descriptors and memory read from /proc. The figures are printed; bounds on memory and
//! descriptors are asserted, latency is only reported (timing belongs to benchmarks).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Daemon, Raw};
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Resident memory (KiB) and open descriptors of a process.
fn proc_stats(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// Lets this test process hold thousands of connections.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(
        hard >= 8192,
        "the hard open-file limit ({hard}) is too low for this test"
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn connect(d: &Daemon) -> UnixStream {
    UnixStream::connect(d.agent_path()).unwrap()
}

#[test]
fn slow_and_idle_clients_leave_a_normal_client_served_and_memory_bounded() {
    raise_fd_limit();
    let mut d = Daemon::prepared();
    d.set_config("max_connections", "4096");
    d.spawn();
    d.provision_self("normal");
    let pid = d.child.as_ref().unwrap().id();
    let (idle_rss, _) = proc_stats(pid);
    println!("idle daemon: RSS {} KiB", idle_rss);
    assert!(
        idle_rss < 30 * 1024,
        "idle RSS {idle_rss} KiB (bound: 30 MiB)"
    );

    let idle: Vec<UnixStream> = (0..1000).map(|_| connect(&d)).collect();
    // Each connection is taken by the daemon once accepted; wait until all are.
    let deadline = Instant::now() + Duration::from_secs(30);
    while proc_stats(pid).1 < 1000 {
        assert!(Instant::now() < deadline, "connections not accepted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (rss_1000, fds_1000) = proc_stats(pid);
    println!("1000 idle connections: RSS {rss_1000} KiB, {fds_1000} descriptors");
    assert!(
        rss_1000 < 100 * 1024,
        "RSS {rss_1000} KiB with 1000 connections (bound: 100 MiB)"
    );

    // 1000 slow clients: each starts a line and then sends one byte every 2 s.
    let mut slow: Vec<UnixStream> = (0..1000).map(|_| connect(&d)).collect();
    for s in &mut slow {
        s.set_nonblocking(true).unwrap();
        let _ = s.write_all(b"{\"jsonrpc\":");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dripping = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write_all(b" ");
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            slow
        })
    };

    // Meanwhile a normal client works for 8 s, past the slow clients' read deadline (5 s).
    let mut agent = d.agent();
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let t = Instant::now();
        agent.call("agent.identity", json!({})).unwrap();
        latencies.push(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let slow = dripping.join().unwrap();
    latencies.sort_unstable();
    let (rss_busy, fds_busy) = proc_stats(pid);
    println!(
        "normal client among 1000 idle and 1000 slow connections: {} calls, p50 {:?}, p99 {:?} (goal: p99 under 50 ms); daemon RSS {rss_busy} KiB, {fds_busy} descriptors",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    // The slow clients were cut off at the read deadline with a typed error.
    let mut timed_out = 0;
    for mut s in slow {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        if out.contains("read_timeout") {
            timed_out += 1;
        }
    }
    println!("slow clients closed with read_timeout: {timed_out} of 1000");
    assert_eq!(timed_out, 1000);
    drop(idle);
}

#[test]
fn a_connection_flood_stays_under_the_cap() {
    raise_fd_limit();
    let mut d = Daemon::prepared();
    d.set_config("max_connections", "64");
    d.spawn();
    d.provision_self("flooded");
    let pid = d.child.as_ref().unwrap().id();
    let (_, fds_before) = proc_stats(pid);
    // Five times the cap: the rest wait in the kernel's listen backlog, costing the daemon
    // nothing.
    let flood: Vec<UnixStream> = (0..320).map(|_| connect(&d)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let (_, fds_flooded) = proc_stats(pid);
    println!(
        "320 connections against a cap of 64: daemon descriptors {fds_before} -> {fds_flooded}"
    );
    assert!(
        fds_flooded <= fds_before + 64 + 2,
        "{fds_flooded} descriptors (cap 64 over {fds_before})"
    );
    // Once they leave, a normal client is served.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = Raw::connect(&d.agent_path());
        c.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"agent.identity\"}\n");
        if let Some(v) = c.recv() {
            assert_eq!(v["result"]["agent"], "flooded", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "not served after the flood");
    }
}

#[test]
fn ten_thousand_malformed_connections_leave_no_growth() {
    let d = Daemon::start();
    let pid = d.child.as_ref().unwrap().id();
    let bad: [&[u8]; 4] = [
        b"not json\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":1}\n",
        b"[]\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"agent.identity\",\"params\":[1]}\n",
    ];
    let path = d.agent_path();
    let round = |n: usize| {
        let path = &path;
        std::thread::scope(|s| {
            for t in 0..8 {
                s.spawn(move || {
                    for i in 0..n / 8 {
                        let mut c = UnixStream::connect(path).unwrap();
                        c.write_all(bad[(i + t) % bad.len()]).unwrap();
                        let mut out = [0u8; 512];
                        let got = c.read(&mut out).unwrap();
                        assert!(
                            std::str::from_utf8(&out[..got])
                                .unwrap()
                                .contains("\"error\""),
                            "a typed error"
                        );
                    }
                });
            }
        });
    };
    // Warm up, so allocator pools and caches reach their working size first.
    round(800);
    std::thread::sleep(Duration::from_millis(300));
    let (rss0, fds0) = proc_stats(pid);
    let started = Instant::now();
    round(10_000);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let (rss1, fds1) = proc_stats(pid);
    println!(
        "10000 malformed connections in {took:?}: descriptors {fds0} -> {fds1}, RSS {rss0} -> {rss1} KiB"
    );
    assert!(fds1 <= fds0 + 2, "descriptors grew: {fds0} -> {fds1}");
    assert!(rss1 <= rss0 + 8 * 1024, "RSS grew: {rss0} -> {rss1} KiB");
    // And it still serves.
    d.provision_self("after");
    assert_eq!(
        d.agent().call("agent.identity", json!({})).unwrap()["agent"],
        "after"
    );
}

#[test]
fn pipelined_floods_are_answered_busy_with_memory_bounded() {
    const CONNS: usize = 8;
    const CALLS: u64 = 5_000;
    let d = Daemon::start();
    d.provision_self("flooder");
    let pid = d.child.as_ref().unwrap().id();
    let (before, _) = proc_stats(pid);

    // Clients that read their answers: each sends 5,000 durable calls in one go. Past the
    // in-flight cap (16) calls are answered `busy` at once, unrun; every call gets exactly one
    // answer.
    let handles: Vec<_> = (0..CONNS)
        .map(|c| {
            let path = d.agent_path();
            std::thread::spawn(move || {
                let mut conn = Raw::connect(&path);
                let mut burst = Vec::new();
                for i in 0..CALLS {
                    let line = json!({"jsonrpc": "2.0", "id": i, "method": "evidence.record",
                                      "params": {"kind": "flood", "body": {"c": c, "i": i}}});
                    burst.extend(serde_json::to_vec(&line).unwrap());
                    burst.push(b'\n');
                }
                let mut writer = conn.stream.try_clone().unwrap();
                let sender = std::thread::spawn(move || writer.write_all(&burst).unwrap());
                let (mut ran, mut busy) = (0u64, 0u64);
                let mut seen = vec![false; CALLS as usize];
                for _ in 0..CALLS {
                    let v = conn.recv().expect("an answer for every call");
                    let id = v["id"].as_u64().unwrap();
                    assert!(!seen[id as usize], "call {id} answered twice");
                    seen[id as usize] = true;
                    if v.get("result").is_some() {
                        ran += 1;
                    } else {
                        assert_eq!(v["error"]["data"]["reason"], "busy", "{v}");
                        assert_eq!(v["error"]["data"]["retryable"], true, "{v}");
                        busy += 1;
                    }
                }
                sender.join().unwrap();
                (ran, busy)
            })
        })
        .collect();
    let (mut ran, mut busy) = (0, 0);
    for h in handles {
        let (r, b) = h.join().unwrap();
        ran += r;
        busy += b;
    }
    let (after_reading, _) = proc_stats(pid);
    assert!(ran > 0 && busy > 0, "ran {ran}, busy {busy}");

    // Clients that never read: each writes until the daemon stops taking bytes. Their answers
    // fill a bounded queue, then the daemon stops reading them; nothing grows without bound.
    let mut silent = Vec::new();
    let mut written = 0usize;
    for c in 0..CONNS {
        let mut s = connect(&d);
        s.set_nonblocking(true).unwrap();
        let line = format!(
            "{}\n",
            json!({"jsonrpc": "2.0", "id": c, "method": "agent.identity", "params": {}})
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stalled_since = None;
        while Instant::now() < deadline {
            match s.write(line.as_bytes()) {
                Ok(n) => {
                    written += n;
                    stalled_since = None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(500) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        }
        silent.push(s);
    }
    let (with_silent, _) = proc_stats(pid);
    println!(
        "pipelined floods: {} calls on {CONNS} reading connections, {ran} run, {busy} answered busy; {CONNS} connections that never read stopped being read after {} KiB in all; daemon RSS {before} KiB before, {after_reading} KiB after the reading flood, {with_silent} KiB with the silent ones",
        CONNS as u64 * CALLS,
        written / 1024
    );
    assert!(
        with_silent < before + 32 * 1024,
        "RSS grew from {before} KiB to {with_silent} KiB"
    );
    drop(silent);
    // And the daemon still answers a normal client.
    let mut c = d.agent();
    assert!(c.call("agent.identity", json!({})).is_ok());
}
