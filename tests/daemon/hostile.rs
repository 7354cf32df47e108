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

use crate::common;
use ari::protocol::Method;

use common::{Daemon, Raw};
use serde_json::{Value, json};
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

/// The process's private (anonymous and shared-memory) resident pages, KiB.
fn private_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    ["RssAnon:", "RssShmem:"]
        .iter()
        .map(|field| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap()
        })
        .sum()
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
    // All 2,000 come from this test's uid, and the idle ones never send a request: what is
    // measured here is what the connections cost while they are all open, so neither the
    // per-uid share nor the first-line deadline may close them (tested below on their own).
    d.set_config("max_connections_per_uid", "4096");
    d.set_config("first_line_timeout_ms", "300000");
    d.spawn();
    d.provision_self("normal");
    let pid = d.child.as_ref().unwrap().id();
    let (idle_rss, _) = proc_stats(pid);
    // Idle, the daemon's own memory is its private pages. Its file-backed pages (the binary and
    // libraries, 25 MiB in a debug build) count in RSS as far as the kernel mapped them, and it
    // maps the neighbours of each page it faults in when they are cached: so they grow with
    // whatever else on the machine read the same libraries, not with anything the daemon does.
    let idle_private = private_kib(pid);
    println!("idle daemon: RSS {idle_rss} KiB, of which private {idle_private} KiB");
    assert!(
        idle_private < 12 * 1024,
        "idle private memory {idle_private} KiB (bound: 12 MiB)"
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
        agent.call(Method::AgentIdentity, json!({})).unwrap();
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
    // Each connection holds its socket and, where the kernel has SO_PEERPIDFD, the pidfd that
    // pins it to the process that connected.
    assert!(
        fds_flooded <= fds_before + 2 * 64 + 2,
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
        d.agent().call(Method::AgentIdentity, json!({})).unwrap()["agent"],
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
    assert!(c.call(Method::AgentIdentity, json!({})).is_ok());
}

/// Where the `.comment` section of a 64-bit little-endian ELF file lies: compiler and linker
/// names, which nothing loads, so a byte there can change without changing what runs.
fn elf_comment_section(elf: &[u8]) -> std::ops::Range<usize> {
    let at = |o: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&elf[o..o + n]);
        usize::try_from(u64::from_le_bytes(b)).unwrap()
    };
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "a 64-bit little-endian ELF file"
    );
    let (shoff, shentsize, shnum, shstrndx) = (at(0x28, 8), at(0x3a, 2), at(0x3c, 2), at(0x3e, 2));
    let header = |i: usize| shoff + i * shentsize;
    let names = at(header(shstrndx) + 0x18, 8);
    for i in 0..shnum {
        let name = names + at(header(i), 4);
        if elf[name..].starts_with(b".comment\0") {
            let offset = at(header(i) + 0x18, 8);
            return offset..offset + at(header(i) + 0x20, 8);
        }
    }
    panic!("no .comment section");
}

/// An agent registered by the digest of its binary; the binary is rewritten in place at the
/// same size (one byte of its `.comment` section, so it still runs) and its mtime set back with
/// `utimes`, so device, inode, size and mtime are all what they were. A new run of it must be
/// measured as the new content, and refused.
#[test]
fn a_binary_rewritten_in_place_with_its_mtime_restored_is_measured_anew_and_refused() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let d = Daemon::start();
    let dir = common::tempdir();
    let program = dir.path().join("agent-runtime");
    std::fs::copy(common::ARICTL, &program).unwrap();
    let sha256 = |p: &std::path::Path| {
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            std::fs::read(p).unwrap(),
        ))
    };
    let registered = sha256(&program);
    d.admin()
        .call(
            Method::AdminAgentProvision,
            json!({"agent": "rewritten", "user": "alice@example.com", "uid": common::uid(),
                   "exe_sha256": registered}),
        )
        .unwrap();
    let identity = || {
        std::process::Command::new(&program)
            .arg("--agent-socket")
            .arg(d.agent_path())
            .arg("identity")
            .output()
            .unwrap()
    };
    // The daemon caches a digest once the file's last change is a second old (peer.rs,
    // SETTLE); wait for that, so the first run's digest is cached.
    let settle = Duration::from_millis(1200);
    std::thread::sleep(settle);
    let first = identity();
    assert!(
        first.status.success() && String::from_utf8_lossy(&first.stdout).contains("rewritten"),
        "the registered binary is served: {}",
        String::from_utf8_lossy(&first.stderr)
    );

    let before = std::fs::metadata(&program).unwrap();
    let comment = elf_comment_section(&std::fs::read(&program).unwrap());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&program)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, comment.start as u64).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], comment.start as u64)
        .unwrap();
    file.set_times(
        std::fs::FileTimes::new()
            .set_accessed(before.accessed().unwrap())
            .set_modified(before.modified().unwrap()),
    )
    .unwrap();
    drop(file);
    let after = std::fs::metadata(&program).unwrap();
    let key = |m: &std::fs::Metadata| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec());
    assert_eq!(
        key(&before),
        key(&after),
        "same device, inode, size and mtime"
    );
    // Settled again, so only the ctime tells the two contents apart.
    std::thread::sleep(settle);
    let second = identity();
    let stderr = String::from_utf8_lossy(&second.stderr);
    println!(
        "registered {registered}; rewritten {}; second run: exit {:?}, {}",
        sha256(&program),
        second.status.code(),
        stderr.trim()
    );
    assert_eq!(second.status.code(), Some(2), "refused: {stderr}");
    assert!(stderr.contains("unknown_caller"), "{stderr}");
}

/// Names the part a copy of this test binary plays for a test (see [`helper`]).
const HELPER: &str = "ARI_HOSTILE_HELPER";

/// The name of the [`helper`] test in this binary.
fn helper_test() -> String {
    common::test_name(module_path!(), "helper")
}

/// Runs this test binary as a helper process playing `part`: only the `helper` entry point
/// runs, and it prints what it found on a line starting with `RESULT `.
fn helper_command(part: &str) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", &helper_test(), "--nocapture", "--test-threads=1"])
        .env(HELPER, part);
    c
}

/// Not a test of its own: the entry point of the helper processes that the tests below start
/// from this binary (with `ARI_HOSTILE_HELPER` naming the part). Without that variable it
/// does nothing.
#[test]
fn helper() {
    let Ok(part) = std::env::var(HELPER) else {
        return;
    };
    let code = match part.as_str() {
        "pid-reuse" => pid_reuse::orchestrate(),
        "attacker" => pid_reuse::attack(),
        "keeper" => pid_reuse::keep(),
        "hog" => hog(),
        other => {
            eprintln!("no helper part {other:?}");
            2
        }
    };
    std::process::exit(code);
}

/// The processes of [`a_kept_connection_is_not_served_as_the_process_that_reused_its_pid`],
/// which all run inside the daemon's own pid namespace.
mod pid_reuse {
    use serde_json::{Value, json};
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    fn var(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
    }

    fn work() -> PathBuf {
        PathBuf::from(var("ARI_WORK"))
    }

    /// One call line.
    fn call(id: u64, method: &str) -> Vec<u8> {
        let mut line = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}}),
        )
        .unwrap();
        line.push(b'\n');
        line
    }

    /// The orchestrator: starts the attacker and waits until it has exited (leaving its
    /// connection to the keeper), then starts the registered binary on the attacker's pid and
    /// tells the keeper to call. Prints `RESULT {pid, tries, first, kept}`, or `SKIP why`.
    pub fn orchestrate() -> i32 {
        let work = work();
        let mut attacker = super::helper_command("attacker")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = i32::try_from(attacker.id()).unwrap();
        assert!(attacker.wait().unwrap().success(), "the attacker failed");
        let first = std::fs::read_to_string(work.join("first")).unwrap();
        // Start times count clock ticks (10 ms): the registered binary must start in a later
        // tick than the attacker did, or no start time could tell them apart (peer.rs).
        std::thread::sleep(Duration::from_millis(50));
        // The pid is free now (the attacker is reaped). Ask the kernel for it: the next pid
        // this namespace hands out is ns_last_pid + 1. Nothing else forks in this namespace but
        // the daemon, whose new threads would take a pid too: then try again.
        let mut tries = 0;
        let mut registered = loop {
            tries += 1;
            if let Err(e) = std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()) {
                println!("SKIP cannot write /proc/sys/kernel/ns_last_pid: {e}");
                return 0;
            }
            let mut r = std::process::Command::new(var("ARI_REGISTERED"))
                .arg("60")
                .spawn()
                .unwrap();
            if i32::try_from(r.id()).unwrap() == pid {
                break r;
            }
            r.kill().unwrap();
            r.wait().unwrap();
            assert!(tries < 50, "pid {pid} could not be had again");
        };
        std::fs::write(work.join("go"), "").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !work.join("done").exists() {
            assert!(Instant::now() < deadline, "the keeper did not finish");
            std::thread::sleep(Duration::from_millis(10));
        }
        let kept = std::fs::read_to_string(work.join("kept")).unwrap();
        registered.kill().unwrap();
        registered.wait().unwrap();
        println!(
            "RESULT {}",
            json!({"pid": pid, "tries": tries, "first": first, "kept": kept})
        );
        0
    }

    /// The attacker: matches no agent. Connects, makes its first call (`agent.identity`, which
    /// is refused, or `evidence.checkpoint`, which asks nothing of the caller), hands the
    /// connection to a keeper that outlives it, and exits.
    // The keeper is left running on purpose: it outlives the attacker.
    #[allow(clippy::zombie_processes)]
    pub fn attack() -> i32 {
        let stream = UnixStream::connect(var("ARI_SOCK")).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let method = match var("ARI_MODE").as_str() {
            "refused" => "agent.identity",
            _ => "evidence.checkpoint",
        };
        (&stream).write_all(&call(1, method)).unwrap();
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer).unwrap();
        std::fs::write(work().join("first"), &answer).unwrap();
        super::helper_command("keeper")
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(stream)))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        0
    }

    /// The keeper: holds the attacker's connection (its stdin) until told, then calls
    /// `agent.identity` on it and records every line the daemon sends until it closes.
    pub fn keep() -> i32 {
        let work = work();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !work.join("go").exists() {
            if Instant::now() > deadline {
                return 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let stdin = std::os::fd::AsFd::as_fd(&std::io::stdin())
            .try_clone_to_owned()
            .unwrap();
        let stream = UnixStream::from(stdin);
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        // Every line the daemon sends, then "closed" if it closed the connection (end of file,
        // or a reset or broken pipe), or what else went wrong.
        let closed = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        };
        let mut kept = Vec::new();
        match (&stream).write_all(&call(2, "agent.identity")) {
            Err(e) if closed(&e) => kept.push(json!("closed")),
            Err(e) => kept.push(json!({"write": e.to_string()})),
            Ok(()) => {
                let mut reader = BufReader::new(&stream);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) => {
                            kept.push(json!("closed"));
                            break;
                        }
                        Ok(_) => kept.push(serde_json::from_str::<Value>(&line).unwrap()),
                        Err(e) if closed(&e) => {
                            kept.push(json!("closed"));
                            break;
                        }
                        Err(e) => {
                            kept.push(json!({"read": e.to_string()}));
                            break;
                        }
                    }
                }
            }
        }
        std::fs::write(work.join("kept"), Value::Array(kept).to_string()).unwrap();
        std::fs::write(work.join("done"), "").unwrap();
        0
    }
}

/// The pid of the daemon itself when it runs under `unshare --fork`: the wrapper's child.
fn wrapped_daemon_pid(d: &Daemon) -> u32 {
    let wrapper = d.child.as_ref().unwrap().id();
    let children =
        std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")).unwrap();
    children.split_whitespace().next().unwrap().parse().unwrap()
}

/// A process that matches no agent connects and hands its connection to a child that outlives
/// it; the registered binary then starts on the very same pid. The kept connection must not be
/// served as that agent: it is refused `unknown_caller` and closed, whether the attacker's own
/// first call was refused (`refused`) or asked nothing of the caller (`quiet`).
///
/// Pid reuse is made certain, not waited for: the daemon runs in a pid namespace of its own
/// (`unshare --pid --fork --mount-proc`), the attacker and the registered binary are started in
/// it (`nsenter`), and the orchestrator writes the attacker's pid minus one to that
/// namespace's `/proc/sys/kernel/ns_last_pid` just before starting the registered binary. In
/// the host's namespace other processes (builds, other tests) would take pids in between; in
/// this one only the daemon's own new threads could, and then the orchestrator tries again.
#[test]
fn a_kept_connection_is_not_served_as_the_process_that_reused_its_pid() {
    let name = "a_kept_connection_is_not_served_as_the_process_that_reused_its_pid";
    if !nix::unistd::getuid().is_root() {
        println!("SKIP {name}: needs root (a pid namespace, and ns_last_pid to reuse a pid)");
        return;
    }
    let tools = ["unshare", "nsenter"].map(|t| {
        std::process::Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if tools.contains(&false) {
        println!("SKIP {name}: needs unshare and nsenter (util-linux)");
        return;
    }
    let mut d = Daemon::prepared();
    d.wrapper = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child=SIGTERM",
    ]
    .map(String::from)
    .to_vec();
    d.spawn();
    let daemon_pid = wrapped_daemon_pid(&d);
    // The registered binary: sleep, run by root. The attacker and its keeper are this test
    // binary, run by root too: same uid, another executable, so they match no agent.
    let registered = std::fs::canonicalize("/bin/sleep").unwrap();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&registered).unwrap(),
    ));
    d.admin()
        .call(
            Method::AdminAgentProvision,
            json!({"agent": "sleeper", "user": "alice@example.com", "uid": 0, "exe_sha256": digest}),
        )
        .unwrap();
    for mode in ["quiet", "refused"] {
        let work = common::tempdir();
        let out = std::process::Command::new("nsenter")
            .args(["--target", &daemon_pid.to_string(), "--pid", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", &helper_test(), "--nocapture", "--test-threads=1"])
            .env(HELPER, "pid-reuse")
            .env("ARI_SOCK", d.agent_path())
            .env("ARI_MODE", mode)
            .env("ARI_REGISTERED", &registered)
            .env("ARI_WORK", work.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: the orchestrator failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The helper's lines follow libtest's "test helper ... " on the same line.
        let said = |tag: &str| {
            stdout
                .lines()
                .find_map(|l| l.split_once(tag).map(|(_, rest)| rest.to_owned()))
        };
        if let Some(why) = said("SKIP ") {
            println!("SKIP {name}: {why}");
            return;
        }
        let result: Value = said("RESULT ")
            .map(|r| serde_json::from_str(&r).unwrap())
            .unwrap_or_else(|| panic!("{mode}: no result: {stdout}"));
        let first: Value = serde_json::from_str(result["first"].as_str().unwrap()).unwrap();
        let kept: Value = serde_json::from_str(result["kept"].as_str().unwrap()).unwrap();
        println!(
            "{mode}: pid {} reused by {} after {} tries; the attacker's first call got {first}; the kept connection got {kept}",
            result["pid"],
            registered.display(),
            result["tries"]
        );
        let kept = kept.as_array().unwrap();
        assert!(
            kept.iter().all(|v| v.get("result").is_none()),
            "{mode}: the kept connection was served as the agent: {kept:?}"
        );
        assert_eq!(kept.last(), Some(&json!("closed")), "{mode}: {kept:?}");
        match mode {
            "refused" => {
                assert_eq!(
                    first["error"]["data"]["reason"], "unknown_caller",
                    "{first}"
                );
            }
            _ => {
                // Nothing about the caller was asked, so the connection stayed open for the
                // keeper; its call is refused as not the process that connected, then closed.
                assert!(
                    first.get("result").is_some()
                        || first["error"]["data"]["reason"] == "not_yet_checkpointed",
                    "{first}"
                );
                assert_eq!(kept.len(), 2, "one answer, then closed: {kept:?}");
                assert_eq!(
                    kept[0]["error"]["data"]["reason"], "unknown_caller",
                    "{kept:?}"
                );
                assert_eq!(kept[0]["id"], 2, "{kept:?}");
            }
        }
    }
    // The daemon stops on the wrapper's SIGTERM; wait for it before its directory goes.
    d.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(format!("/proc/{daemon_pid}/stat"))
        .is_ok_and(|s| !s.contains(") Z "))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The hog: opens connections to `ARI_SOCK` from four tasks at once, as fast as the daemon takes
/// them, and keeps every one the daemon leaves open, silent, until its stdin closes (or a
/// minute has passed). Prints `READY` once it has made 400 attempts, then a `RESULT` with what it
/// saw: connections the daemon answered or closed at once (`refused`, with one such answer, and
/// `silent`: how many of those were closed without an answer), connections it kept open
/// (`kept`), and connects that did not complete within 200 ms (`stalled`).
fn hog() -> i32 {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;
    let path = std::env::var("ARI_SOCK").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            stop.store(true, Relaxed);
        });
    }
    let counts: Arc<[AtomicUsize; 5]> = Arc::new(Default::default());
    let (attempts, refused, kept, stalled, silent) = (0, 1, 2, 3, 4);
    let answer = Arc::new(Mutex::new(String::new()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let started = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (path, stop, counts, answer) =
                (path.clone(), stop.clone(), counts.clone(), answer.clone());
            tasks.spawn(async move {
                let mut held = Vec::new();
                while !stop.load(Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    if counts[attempts].fetch_add(1, Relaxed) + 1 == 400 {
                        println!("READY");
                    }
                    let connect = tokio::net::UnixStream::connect(&path);
                    let Ok(Ok(mut s)) =
                        tokio::time::timeout(Duration::from_millis(200), connect).await
                    else {
                        counts[stalled].fetch_add(1, Relaxed);
                        continue;
                    };
                    let mut buf = [0u8; 512];
                    match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
                        Err(_) => {
                            counts[kept].fetch_add(1, Relaxed);
                            held.push(s);
                        }
                        Ok(r) => {
                            counts[refused].fetch_add(1, Relaxed);
                            match r {
                                Ok(n) if n > 0 => {
                                    let mut a = answer.lock().unwrap();
                                    if a.is_empty() {
                                        *a = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
                                    }
                                }
                                _ => {
                                    counts[silent].fetch_add(1, Relaxed);
                                }
                            }
                        }
                    }
                }
                held.len()
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    println!(
        "RESULT {}",
        json!({
            "attempts": counts[attempts].load(Relaxed),
            "refused": counts[refused].load(Relaxed),
            "kept": counts[kept].load(Relaxed),
            "stalled": counts[stalled].load(Relaxed),
            "silent": counts[silent].load(Relaxed),
            "answer": *answer.lock().unwrap(),
        })
    );
    0
}

/// One uid (nobody, through setpriv) opens as many connections to the agent socket as it can,
/// over and over, keeping every one the daemon leaves open; meanwhile a registered agent of
/// another uid (this test, root) connects and calls 50 times. Every call must be answered
/// within 10 s overall; its latencies are printed, not judged. The hog is answered `busy` past
/// its share, and what it keeps is closed once the first-line deadline passes without a request.
#[test]
fn one_uid_holding_every_connection_it_can_leaves_the_agents_served() {
    use std::io::BufRead;
    use std::process::Stdio;
    let name = "one_uid_holding_every_connection_it_can_leaves_the_agents_served";
    if !nix::unistd::getuid().is_root() {
        println!("SKIP {name}: needs root to run the hog as another user with setpriv");
        return;
    }
    let mut d = Daemon::prepared();
    // The production default (the dev config allows one developer 256).
    d.set_config("max_connections_per_uid", "32");
    d.spawn();
    d.provision_self("starved");
    let mut hog = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", &helper_test(), "--nocapture", "--test-threads=1"])
        .env(HELPER, "hog")
        .env("ARI_SOCK", d.agent_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) is installed");
    let mut said = std::io::BufReader::new(hog.stdout.take().unwrap()).lines();
    let mut hog_lines = Vec::new();
    loop {
        let line = said
            .next()
            .expect("the hog ended before it was ready")
            .unwrap();
        let ready = line.contains("READY");
        hog_lines.push(line);
        if ready {
            break;
        }
    }

    // The agent, while the hog goes on: a fresh connection for every call, as a runtime that
    // starts up would make. A call that cannot get a connection waits in the backlog, so the
    // calls run on a thread and the test gives them 10 s in all.
    let agent_path = d.agent_path();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut latencies = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let mut c = Raw::connect(&agent_path);
            c.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"agent.identity\"}\n");
            let v = c.recv().expect("an answer");
            assert_eq!(v["result"]["agent"], "starved", "{v}");
            latencies.push(t.elapsed());
        }
        let _ = done.send(latencies);
    });
    let answered = finished.recv_timeout(Duration::from_secs(10));
    drop(hog.stdin.take());
    hog_lines.extend(said.map(Result::unwrap));
    hog.wait().unwrap();
    let report: Value = hog_lines
        .iter()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_owned()))
        .map(|r| serde_json::from_str(&r).unwrap())
        .unwrap_or_else(|| panic!("no report from the hog: {hog_lines:?}"));
    println!("the hog (uid 65534): {report}");
    let mut latencies = answered.expect(
        "the agent's 50 calls were not all answered within 10 s while one uid held connections",
    );
    latencies.sort_unstable();
    println!(
        "registered agent (uid 0) beside the hog: 50 calls, each on a new connection, p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    assert!(
        report["refused"].as_u64().unwrap() > 0,
        "the hog was refused past its share: {report}"
    );
    assert_eq!(
        report["silent"], 0,
        "every refused connection is told why before it is closed: {report}"
    );
    let answer = report["answer"].as_str().unwrap();
    assert!(
        answer.contains("\"busy\"") && answer.contains("max_connections_per_uid"),
        "a refused connection is told why: {answer}"
    );
}
