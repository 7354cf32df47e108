//! `arictl`: the operator's tool (over the admin socket), the agent-side client for scripts
//! (over the agent socket), the offline verifier, and the benchmark driver.

use anyhow::{Context, Result, anyhow, bail};
use ari::client::{Client, ClientError, DEFAULT_ADMIN_SOCKET, DEFAULT_AGENT_SOCKET};
use ari::clock::unix_now;
use ari::jose::Jwk;
use ari::{attest, bench, dev, evidence, voucher};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "arictl",
    version,
    about = "Operate, use and verify the ARI signer daemon (arid)",
    after_help = "Examples:\n  arictl agent provision --agent shop-bot --user alice@example.com --uid 1001 --exe /usr/bin/shop-bot\n  arictl agent list\n  arictl attest --nonce 3f1c9a0e5b7d2468\n  arictl bench attest --clients 16 --seconds 10"
)]
struct Cli {
    /// The admin socket (operators).
    #[arg(long, global = true, env = "ARI_ADMIN_SOCKET", default_value = DEFAULT_ADMIN_SOCKET, value_name = "PATH")]
    admin_socket: PathBuf,
    /// The agent socket (agent runtimes).
    #[arg(long, global = true, env = "ARI_AGENT_SOCKET", default_value = DEFAULT_AGENT_SOCKET, value_name = "PATH")]
    agent_socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage agents (operator, admin socket).
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Show the daemon's health: backend, queues, agents, vouchers, evidence log, uptime (operator).
    #[command(
        after_help = "Examples:\n  arictl status\n  arictl status --json | jq .queues\n  arictl status --issuer-jwk > issuer.jwk\n  arictl status --log-jwk > log.jwk"
    )]
    Status {
        /// Print everything as JSON.
        #[arg(long)]
        json: bool,
        /// Print only the public JWK of the daemon's voucher issuer key (for verifiers).
        #[arg(long, conflicts_with_all = ["json", "log_jwk"])]
        issuer_jwk: bool,
        /// Print only the public JWK of the daemon's evidence log key (for auditors).
        #[arg(long, conflicts_with = "json")]
        log_jwk: bool,
    },
    /// Print the daemon's metrics in the Prometheus text format (operator).
    #[command(
        after_help = "Examples:\n  arictl metrics\n  arictl metrics | grep ari_requests_total\n  # for a node_exporter textfile collector:\n  arictl metrics > /var/lib/prometheus/node-exporter/arid.prom.$$ && mv /var/lib/prometheus/node-exporter/arid.prom.$$ /var/lib/prometheus/node-exporter/arid.prom"
    )]
    Metrics,
    /// Issue, list, show, revoke, import and delegate vouchers.
    #[command(subcommand)]
    Voucher(VoucherCmd),
    /// Register the keys of external voucher issuers (operator, admin socket).
    #[command(subcommand)]
    Issuer(IssuerCmd),
    /// Ask for, follow and report payments (agent side), or confirm and list them (operator).
    #[command(subcommand)]
    Payment(PaymentCmd),
    /// Show the calling agent's identity (agent side, agent socket).
    #[command(after_help = "Examples:\n  arictl identity\n  arictl identity --jwk > agent.jwk")]
    Identity {
        /// Print only the public JWK of the agent's key (for verifiers).
        #[arg(long)]
        jwk: bool,
    },
    /// Get a runtime attestation for a verifier's nonce (agent side, agent socket).
    #[command(after_help = "Example:\n  arictl attest --nonce 3f1c9a0e5b7d2468 > attestation.jws")]
    Attest {
        /// The verifier's nonce, 8 to 512 bytes.
        #[arg(long)]
        nonce: String,
    },
    /// Record an execution decision in the evidence log, signed with the agent's key (agent side).
    #[command(
        after_help = "Example:\n  arictl record --kind offer.chosen --body '{\"offer\":\"X\",\"price\":1999,\"why\":\"cheapest in stock\"}'"
    )]
    Record {
        /// The agent's label for the statement: letters, digits and . _ - :
        #[arg(long)]
        kind: String,
        /// The statement, a JSON object (`-` for stdin).
        #[arg(long)]
        body: String,
    },
    /// Read and export the evidence log (operator, admin socket).
    #[command(subcommand)]
    Log(LogCmd),
    /// Verify artifacts offline.
    #[command(subcommand)]
    Verify(VerifyCmd),
    /// The host's TPM, for enrolling it with a verifier (operator, admin socket).
    #[command(subcommand)]
    Tpm(TpmCmd),
    /// Measure the daemon.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Generate an agent's key in the key store and register how its process is recognized.
    #[command(
        after_help = "Examples:\n  arictl agent provision --agent shop-bot --user alice@example.com --uid 1001 --exe /usr/bin/shop-bot\n  arictl agent provision --agent bot2 --user bob --uid 1002 --gid 1002 --exe-sha256 <64 hex> --cgroup /system.slice/bot2.service"
    )]
    Provision {
        /// Agent id: 1-64 of A-Z a-z 0-9 . _ -
        #[arg(long)]
        agent: String,
        /// The user the agent acts for.
        #[arg(long)]
        user: String,
        /// The uid the agent's process runs as.
        #[arg(long)]
        uid: u32,
        /// The gid the agent's process runs as.
        #[arg(long)]
        gid: Option<u32>,
        /// The agent's executable; its SHA-256 becomes a selector.
        #[arg(long, conflicts_with = "exe_sha256", value_name = "PATH")]
        exe: Option<PathBuf>,
        /// The SHA-256 of the agent's executable, hex.
        #[arg(long, value_name = "HEX")]
        exe_sha256: Option<String>,
        /// A cgroup path prefix the agent's process must be under.
        #[arg(long, value_name = "PREFIX")]
        cgroup: Option<String>,
    },
    /// List agents.
    #[command(after_help = "Examples:\n  arictl agent list\n  arictl agent list --json")]
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one agent.
    #[command(after_help = "Example:\n  arictl agent show shop-bot")]
    Show { agent: String },
    /// Refuse the agent's requests from now on.
    #[command(after_help = "Example:\n  arictl agent freeze shop-bot")]
    Freeze { agent: String },
    /// Serve a frozen agent again.
    #[command(after_help = "Example:\n  arictl agent unfreeze shop-bot")]
    Unfreeze { agent: String },
    /// Retire an agent for good: its key is destroyed, its id stays reserved.
    #[command(after_help = "Example:\n  arictl agent retire shop-bot")]
    Retire { agent: String },
    /// Print a PKCS#10 request for the agent's key, signed inside the key store.
    #[command(
        after_help = "Example:\n  arictl agent csr shop-bot --subject 'CN=shop-bot,O=Example' > shop-bot.csr"
    )]
    Csr {
        agent: String,
        /// Subject DN (RFC 4514).
        #[arg(long)]
        subject: String,
    },
    /// Store a certificate for the agent's key after checking it certifies that key.
    #[command(after_help = "Example:\n  arictl agent cert-import shop-bot shop-bot.pem")]
    CertImport { agent: String, file: PathBuf },
}

#[derive(Subcommand)]
enum VoucherCmd {
    /// Issue a voucher for an agent's user, signed by the daemon's issuer key in the token.
    #[command(
        after_help = "Examples:\n  arictl voucher issue --agent shop-bot --level L3 --currency CNY --max-amount 5000 --budget 20000 --payee shop.example --expires 30d\n  arictl voucher issue --agent shop-bot --level L2 --currency EUR --budget 10000 --category groceries --expires 1767225600 --json"
    )]
    Issue {
        /// The agent the voucher is for.
        #[arg(long)]
        agent: String,
        /// Autonomy level, L0 to L5.
        #[arg(long)]
        level: String,
        /// ISO 4217 currency code.
        #[arg(long)]
        currency: String,
        /// Largest single payment, in minor units.
        #[arg(long)]
        max_amount: Option<u64>,
        /// Smallest single payment, in minor units.
        #[arg(long)]
        min_amount: Option<u64>,
        /// Total of all payments, in minor units.
        #[arg(long)]
        budget: Option<u64>,
        /// Most payments.
        #[arg(long)]
        max_payments: Option<u32>,
        /// An allowed payee (repeat for several).
        #[arg(long = "payee")]
        payees: Vec<String>,
        /// An allowed category (repeat for several).
        #[arg(long = "category")]
        categories: Vec<String>,
        /// The funds carrier (account, card, wallet) to draw on.
        #[arg(long)]
        funds_carrier: Option<String>,
        /// Valid from: Unix seconds or a duration from now (30s, 15m, 12h, 7d).
        #[arg(long, value_name = "T|DURATION")]
        not_before: Option<String>,
        /// Valid until: Unix seconds or a duration from now (30s, 15m, 12h, 7d).
        #[arg(long, value_name = "T|DURATION")]
        expires: String,
        /// Every authorization must be reported within this duration.
        #[arg(long, value_name = "DURATION")]
        report_within: Option<String>,
        /// A condition over the payment's facts that must hold (repeat for several); see
        /// docs/formats.md, e.g. 'facts.unit_price >= 1200 && facts.quantity <= 3'.
        #[arg(long = "condition", value_name = "EXPR")]
        conditions: Vec<String>,
        /// Print JSON (id, digest, voucher) instead of the voucher alone.
        #[arg(long)]
        json: bool,
    },
    /// List vouchers.
    #[command(
        after_help = "Examples:\n  arictl voucher list\n  arictl voucher list --agent shop-bot --json"
    )]
    List {
        /// Only this agent's vouchers.
        #[arg(long)]
        agent: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one voucher (by id or digest).
    #[command(after_help = "Example:\n  arictl voucher show 3f1c9a0e5b7d24683f1c9a0e5b7d2468")]
    Show { voucher: String },
    /// Revoke a voucher; no payment is authorized against it afterwards.
    #[command(after_help = "Example:\n  arictl voucher revoke 3f1c9a0e5b7d24683f1c9a0e5b7d2468")]
    Revoke { voucher: String },
    /// Write the signed list of revoked vouchers, for verifiers working offline.
    #[command(after_help = "Example:\n  arictl voucher revoked --export revoked.jws")]
    Revoked {
        /// Where to write the list (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        export: PathBuf,
    },
    /// Register a voucher signed by an external issuer (see `arictl issuer add`).
    #[command(after_help = "Example:\n  arictl voucher import voucher-from-wallet.txt")]
    Import {
        /// File with the compact voucher (`-` for stdin).
        file: PathBuf,
    },
    /// Delegate part of a voucher you hold to a child agent (agent side, agent socket).
    #[command(
        after_help = "Example:\n  echo '[{\"type\":\"org.a2p2.autonomy_level\",\"level\":\"L3\"},{\"type\":\"payment.budget\",\"currency\":\"CNY\",\"max\":2000}]' > child.json\n  arictl voucher delegate --voucher 3f1c9a0e5b7d2468 --agent shop-bot-child --constraints child.json"
    )]
    Delegate {
        /// The voucher you hold: id, digest or compact form.
        #[arg(long)]
        voucher: String,
        /// The child agent.
        #[arg(long)]
        agent: String,
        /// File with the child's constraints, a JSON array (`-` for stdin); each must narrow yours.
        #[arg(long, value_name = "FILE")]
        constraints: PathBuf,
        /// Valid until: Unix seconds or a duration from now (default: the parent's expiry).
        #[arg(long, value_name = "T|DURATION")]
        expires: Option<String>,
        /// Print JSON (id, digest, voucher) instead of the voucher alone.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum IssuerCmd {
    /// Trust vouchers signed by this key (a user's device, an agent provider).
    #[command(after_help = "Example:\n  arictl issuer add alice-phone --jwk alice-phone.jwk")]
    Add {
        /// A name for the issuer.
        name: String,
        /// File with the issuer's public JWK.
        #[arg(long, value_name = "FILE")]
        jwk: PathBuf,
    },
    /// List trusted issuers, the daemon's own first.
    #[command(after_help = "Example:\n  arictl issuer list")]
    List,
    /// Stop trusting an issuer.
    #[command(after_help = "Example:\n  arictl issuer remove alice-phone")]
    Remove { name: String },
}

#[derive(Subcommand)]
enum PaymentCmd {
    /// Ask for a payment authorization (agent side). Prints the receipt a verifier checks.
    #[command(
        after_help = "Example:\n  arictl payment authorize --voucher 3f1c9a0e5b7d2468 --amount 1250 --currency CNY --payee shop.example \\\n      --category groceries --transaction-id sha256-of-checkout --aud psp.example --nonce 8c1d44e0a9b2 \\\n      --fact unit_price=450 --fact quantity=2 > receipt.json"
    )]
    Authorize {
        /// The voucher: id, digest or compact form (an external one is registered on first use).
        #[arg(long)]
        voucher: String,
        /// Minor units.
        #[arg(long)]
        amount: u64,
        /// ISO 4217 code.
        #[arg(long)]
        currency: String,
        /// Who is paid.
        #[arg(long)]
        payee: String,
        /// The purchase category.
        #[arg(long)]
        category: Option<String>,
        /// Digest of the merchant's checkout.
        #[arg(long)]
        transaction_id: String,
        /// The verifier the authorization is for.
        #[arg(long)]
        aud: String,
        /// The verifier's nonce.
        #[arg(long)]
        nonce: String,
        /// A fact for conditions, NAME=VALUE (integers, true/false, otherwise text); repeatable.
        #[arg(long = "fact", value_name = "NAME=VALUE")]
        facts: Vec<String>,
        /// For an L2 voucher: wait this long for the operator's decision.
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
    },
    /// Show one of your decisions (agent side); waits for a pending one with --wait.
    #[command(
        after_help = "Examples:\n  arictl payment status 01J9Z3K7Q2\n  arictl payment status 01J9Z3K7Q2 --wait 2m   # until an operator confirms or rejects it"
    )]
    Status {
        decision: String,
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
    },
    /// Report how an authorized payment ended (agent side).
    #[command(
        after_help = "Example:\n  arictl payment report 9f2c... --outcome refunded --reference psp-ref-778"
    )]
    Report {
        decision: String,
        /// succeeded, failed or refunded.
        #[arg(long)]
        outcome: String,
        /// The payment rail's reference.
        #[arg(long)]
        reference: Option<String>,
    },
    /// List decisions (operator).
    #[command(
        after_help = "Examples:\n  arictl payment list --status pending\n  arictl payment list --voucher 3f1c9a0e5b7d2468 --json"
    )]
    List {
        /// authorized, denied, pending or void.
        #[arg(long)]
        status: Option<String>,
        /// Only decisions on this voucher id.
        #[arg(long)]
        voucher: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one decision (operator).
    #[command(after_help = "Example:\n  arictl payment show 01J9Z3K7Q2")]
    Show { decision: String },
    /// Confirm a payment held for a human (L2); the daemon signs it (operator).
    #[command(
        after_help = "Example:\n  arictl payment list --status pending\n  arictl payment confirm 01J9Z3K7Q2"
    )]
    Confirm { decision: String },
    /// Reject a payment held for a human (L2); its amount returns to the budget (operator).
    #[command(
        after_help = "Example:\n  arictl payment reject 01J9Z3K7Q2 --note \"not what I asked for\""
    )]
    Reject {
        decision: String,
        /// Why, for the log.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand)]
enum LogCmd {
    /// Write entries, checkpoints and the log key to a directory for `arictl verify log`.
    #[command(
        after_help = "Examples:\n  arictl log export --out /tmp/evidence\n  arictl log export --out /tmp/tail --from 1000\n  arictl log export --out /tmp/copy --db /backup/ari.db   # offline, from a copy of the database"
    )]
    Export {
        /// The directory to create.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// First entry.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// One past the last entry (default: the newest checkpoint's size).
        #[arg(long)]
        to: Option<u64>,
        /// Read this database file directly instead of asking the daemon.
        #[arg(long, value_name = "FILE")]
        db: Option<PathBuf>,
    },
    /// Print the newest signed checkpoint.
    #[command(after_help = "Example:\n  arictl log checkpoint > checkpoint.txt")]
    Checkpoint,
    /// Print one entry.
    #[command(after_help = "Example:\n  arictl log entry 42 > entry-42.json")]
    Entry { index: u64 },
    /// Print the inclusion proof of an entry in the newest (or a given) checkpoint.
    #[command(
        after_help = "Examples:\n  arictl log proof 42 > proof-42.json\n  arictl log proof 42 --tree-size 1000\n  arictl verify inclusion entry-42.json proof-42.json checkpoint.txt --log-key log.jwk"
    )]
    Proof {
        index: u64,
        #[arg(long)]
        tree_size: Option<u64>,
    },
}

#[derive(Subcommand)]
enum TpmCmd {
    /// Export the attestation key (PEM and JWK) and the EK certificate when the TPM has one.
    #[command(
        after_help = "Examples:\n  arictl tpm ak\n  arictl tpm ak --out /tmp/host-7   # writes ak.pem, ak.jwk and ek.pem if present"
    )]
    Ak {
        /// Write ak.pem, ak.jwk (and ek.pem) into this directory instead of printing JSON.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write a bundle's quote as the files `tpm2_checkquote` reads, for an independent check
    /// (offline).
    #[command(
        after_help = "Example:\n  arictl tpm quote-files receipt.json --out q/\n  tpm2_checkquote -u ak.pem -m q/quote.msg -s q/quote.sig -f q/pcrs.bin -g sha256 -q $(cat q/qualification.hex)"
    )]
    QuoteFiles {
        /// The bundle, in any form `verify attestation` reads (`-` for stdin).
        bundle: PathBuf,
        /// Directory for quote.msg, quote.sig, pcrs.bin and qualification.hex.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum VerifyCmd {
    /// Verify a voucher (or a chain, root first) against trusted issuer keys.
    #[command(
        after_help = "Example:\n  arictl status --issuer-jwk > issuer.jwk\n  arictl verify voucher --trust issuer.jwk voucher.txt"
    )]
    Voucher {
        /// A trusted issuer's public JWK file (repeat for several).
        #[arg(long = "trust", value_name = "FILE", required = true)]
        trust: Vec<PathBuf>,
        /// A signed revocation list (`arictl voucher revoked --export`) to check against.
        #[arg(long, value_name = "FILE")]
        revoked: Option<PathBuf>,
        /// Files holding the vouchers of the chain, root first (`-` for stdin).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Verify a payment receipt (what `arictl payment authorize` prints): the chain to a trusted
    /// issuer, the holder binding, the authorization's signature, limits, expiry and attestation.
    #[command(
        after_help = "Example:\n  arictl verify payment --trust issuer.jwk receipt.json\n  arictl verify payment --trust issuer.jwk --revoked revoked.jws --at 1795400000 receipt.json"
    )]
    Payment {
        /// A trusted issuer's public JWK file (repeat for several).
        #[arg(long = "trust", value_name = "FILE", required = true)]
        trust: Vec<PathBuf>,
        /// A signed revocation list to check against.
        #[arg(long, value_name = "FILE")]
        revoked: Option<PathBuf>,
        /// Verify as of this Unix time instead of now.
        #[arg(long, value_name = "UNIX")]
        at: Option<i64>,
        /// The receipt JSON (`-` for stdin).
        file: PathBuf,
    },
    /// Verify an exported log: every entry, link, statement and checkpoint signature, and the
    /// tree against each checkpoint; with --since, that it extends a checkpoint seen earlier.
    /// Fails unless a checkpoint signed by the log key covers the last entry.
    #[command(
        after_help = "Example:\n  arictl log export --out /tmp/evidence\n  arictl verify log /tmp/evidence --log-key log.jwk --since yesterday.note"
    )]
    Log {
        /// The export directory.
        dir: PathBuf,
        /// The log's public JWK, from a source you trust.
        #[arg(long, value_name = "FILE")]
        log_key: PathBuf,
        /// A checkpoint note seen earlier that the log must extend.
        #[arg(long, value_name = "FILE")]
        since: Option<PathBuf>,
        /// Entries past the newest checkpoint: list them as NOT covered by any signature
        /// (counted apart, never verified) instead of failing.
        #[arg(long)]
        allow_unsigned_tail: bool,
    },
    /// Verify that an entry is in the log a signed checkpoint commits to.
    #[command(
        after_help = "Example:\n  arictl log entry 42 | jq -r .entry > entry.json\n  arictl log proof 42 > proof.json\n  arictl log checkpoint | jq -r .note > checkpoint.note\n  arictl verify inclusion entry.json proof.json checkpoint.note --log-key log.jwk"
    )]
    Inclusion {
        /// The entry's exact bytes.
        entry: PathBuf,
        /// The proof JSON (`evidence.inclusion`'s result).
        proof: PathBuf,
        /// The signed checkpoint note.
        checkpoint: PathBuf,
        /// The log's public JWK.
        #[arg(long, value_name = "FILE")]
        log_key: PathBuf,
    },
    /// Verify an attestation bundle's TPM evidence: the AK's signature on the quote and on the
    /// key certification, the qualifying data against the binding digest (or the batch root and
    /// path), the PCRs, executable and uid against a policy, and the TPM clock against the state
    /// kept from earlier bundles. Names the failed check.
    #[command(
        after_help = "Examples:\n  arictl tpm ak --out enroll/\n  arictl verify attestation receipt.json --ak enroll/ak.pem --policy policy.toml --state seen.json\n  arictl attest --nonce 3f1c9a0e5b7d2468 > a.json\n  arictl verify attestation a.json --ak enroll/ak.jwk --policy policy.toml --nonce 3f1c9a0e5b7d2468\n\nThe policy (TOML):\n  require_tpm = true        # false lets bundles without TPM evidence (PKCS#11) pass\n  exe_sha256 = [\"<hex>\"]     # allowed executables; empty allows any\n  uids = [1001]             # allowed uids; empty allows any\n  [pcrs]                    # sha256 PCR values that must be quoted\n  0 = \"<hex>\""
    )]
    Attestation {
        /// The bundle: a payment receipt, `arictl attest` output, bundle JSON or its base64url
        /// (`-` for stdin).
        bundle: PathBuf,
        /// The enrolled attestation key: PEM, JWK, or `arictl tpm ak` output.
        #[arg(long, value_name = "FILE")]
        ak: PathBuf,
        /// The policy file (TOML).
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Keeps the TPM clock and counters last seen per AK; refuses bundles older than them.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// For an `agent.attest` bundle: the nonce you sent, checked against its binding.
        #[arg(long)]
        nonce: Option<String>,
    },
    /// Verify an attestation against the agent's public JWK and the nonce you sent.
    #[command(
        after_help = "Example:\n  arictl identity --jwk > agent.jwk\n  arictl verify attest --jwk agent.jwk --nonce 3f1c9a0e5b7d2468 attestation.jws"
    )]
    Attest {
        /// File with the agent's public JWK.
        #[arg(long, value_name = "FILE")]
        jwk: PathBuf,
        /// The nonce the attestation must answer.
        #[arg(long)]
        nonce: String,
        /// File with the attestation (a compact JWS), or `-` for stdin.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Durable payment.authorize on an L5 voucher against raw signing on the same token.
    #[command(
        after_help = "Examples:\n  arictl bench authorize --clients 16 --seconds 10\n  arictl bench authorize --clients 1 --seconds 5 --json\n  arictl bench authorize --clients 1,4,16,64,256 --seconds 5   # one row per client count\n  arictl bench authorize --backend tpm --clients 16 --seconds 10   # batched quotes vs one each vs raw TPM2_Sign"
    )]
    Authorize(BenchArgs),
    /// agent.attest over the socket against raw signing on the same token.
    #[command(
        after_help = "Examples:\n  arictl bench attest --clients 16 --seconds 10\n  arictl bench attest --clients 1 --seconds 5 --json\n  arictl bench attest --clients 1,4,16,64,256 --seconds 5   # one row per client count\n  arictl bench attest --state-dir ~/.local/state/ari-dev   # use a running dev daemon"
    )]
    Attest(BenchArgs),
    /// Durable evidence.record (signed agent statements) over the socket: entries per second,
    /// latency, checkpoints per batch and bytes per entry on disk, against raw SQLite appends
    /// with the same durability and commits per entry.
    #[command(
        after_help = "Examples:\n  arictl bench log --clients 16 --seconds 10\n  arictl bench log --clients 1 --seconds 5 --json\n  arictl bench log --clients 1,4,16,64,256 --seconds 5"
    )]
    Log(BenchArgs),
    /// Inclusion and consistency proof generation from a log of N entries built for the run,
    /// against reading as many tree nodes.
    #[command(
        after_help = "Examples:\n  arictl bench proof --entries 1000000\n  arictl bench proof --entries 100000 --json"
    )]
    Proof {
        /// Entries in the log.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Proofs to time.
        #[arg(long, default_value_t = 10_000)]
        samples: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The offline verifier (`arictl verify payment`, `arictl verify inclusion`) on a receipt and
    /// an inclusion proof made by a daemon in the same run, against raw P-256 verification of
    /// as many signatures. --clients are verifier threads.
    #[command(
        after_help = "Examples:\n  arictl bench verify --clients 1 --seconds 5\n  arictl bench verify --clients 1,2 --seconds 5 --json\n  arictl bench verify --log-entries 100000   # a longer inclusion proof"
    )]
    Verify {
        #[command(flatten)]
        args: BenchArgs,
        /// Statements recorded after the payment, so that its inclusion proof has about log2(N) hashes.
        #[arg(long, default_value_t = 1_000, value_name = "N")]
        log_entries: u64,
    },
    /// (internal) The raw signing half of `bench attest`, run in a child process.
    #[command(hide = true)]
    Raw {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long)]
        key_label: String,
        #[arg(long)]
        threads: usize,
        #[arg(long)]
        seconds: f64,
    },
}

#[derive(Clone, Copy)]
enum BenchKind {
    Attest,
    Authorize,
}

#[derive(Args)]
struct BenchArgs {
    /// Concurrent client connections; a comma-separated list (1,4,16,64,256) runs one row per
    /// count on the same daemon.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "16",
        value_name = "N[,N...]"
    )]
    clients: Vec<usize>,
    /// Seconds to run each side.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Print one JSON object per client count, one per line.
    #[arg(long)]
    json: bool,
    /// Use the running dev daemon of this directory instead of a throwaway one.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// `bench authorize` only: run on a software TPM, with batched quotes and then with one
    /// quote per authorization, each on its own throwaway daemon.
    #[arg(
        long,
        value_enum,
        default_value = "pkcs11",
        conflicts_with = "state_dir"
    )]
    backend: BenchBackend,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchBackend {
    Pkcs11,
    Tpm,
}

fn call(socket: &Path, method: &str, params: Value) -> Result<Value> {
    let mut client = Client::connect(socket).map_err(|e| hint(e, socket))?;
    Ok(client.call(method, params)?)
}

fn hint(e: ClientError, socket: &Path) -> anyhow::Error {
    match e {
        ClientError::Connect { ref source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            anyhow!(
                "{e}\nhint: the socket's group may use it: operators join the admin socket's group (`ari-admin` in a package install), agent runtimes the agent socket's (`ari-agents`)"
            )
        }
        ClientError::Connect { .. } => anyhow!(
            "{e}\nhint: is arid running? Point arictl at its socket with --admin-socket/--agent-socket or ARI_ADMIN_SOCKET/ARI_AGENT_SOCKET (now {})",
            socket.display()
        ),
        other => other.into(),
    }
}

/// The member at a JSON pointer, or null.
fn field<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// One line for a status change: `agent ID: STATUS`.
fn status_line(v: &Value) -> Result<()> {
    let id = field(v, "/agent").as_str().unwrap_or("?");
    let status = field(v, "/status").as_str().unwrap_or("?");
    let extra = if field(v, "/key_destroyed") == &Value::Bool(true) {
        " (key destroyed)"
    } else {
        ""
    };
    println!("agent {id}: {status}{extra}");
    Ok(())
}

/// `admin.status` for people.
fn status_text(v: &Value) -> String {
    let s = |p: &str| match field(v, p) {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let n = |p: &str| field(v, p).as_u64().unwrap_or(0);
    let counts = |p: &str| match field(v, p).as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, c)| format!("{c} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    };
    let up = n("/uptime_s");
    let health = match s("/backend_health/state").as_str() {
        "ok" => format!("ok (probe {} µs)", n("/backend_health/probe_us")),
        _ => format!("FAILING: {}", s("/backend_health/detail")),
    };
    let mut out = format!(
        "arid {version}, up {d}d {h}h {m}m {sec}s, config {config:.12}… (reloaded {reloads} times)\n\
         backend   {backend}: {health}; queue {bw}/{bc}\n\
         ledger    queue {lw}/{lc}\n\
         agents    {agents}\n\
         vouchers  {vouchers}\n\
         evidence  {origin}: {entries} entries, newest checkpoint covers {cp} ({unsigned} not yet)\n",
        version = s("/version"),
        d = up / 86_400,
        h = up / 3_600 % 24,
        m = up / 60 % 60,
        sec = up % 60,
        config = s("/config_sha256"),
        reloads = n("/reloads"),
        backend = s("/backend"),
        bw = n("/queues/backend/waiting"),
        bc = n("/queues/backend/capacity"),
        lw = n("/queues/ledger/waiting"),
        lc = n("/queues/ledger/capacity"),
        agents = counts("/agents"),
        vouchers = counts("/vouchers"),
        origin = s("/evidence/origin"),
        entries = n("/evidence/entries"),
        cp = s("/evidence/checkpoint_size"),
        unsigned = n("/evidence/unsigned"),
    );
    if !field(v, "/tpm").is_null() {
        out.push_str(&format!(
            "tpm       ak {}: {} commands, {} quotes for {} payments, {} signatures\n",
            s("/tpm/ak"),
            n("/tpm/commands"),
            n("/tpm/quotes"),
            n("/tpm/quoted"),
            n("/tpm/signs")
        ));
    }
    out
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

fn agent_cmd(cli: &Cli, cmd: &AgentCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        AgentCmd::Provision {
            agent,
            user,
            uid,
            gid,
            exe,
            exe_sha256,
            cgroup,
        } => {
            let digest = match (exe, exe_sha256) {
                (Some(path), _) => Some(sha256_file(path)?),
                (None, d) => d.clone(),
            };
            let mut params = json!({ "agent": agent, "user": user, "uid": uid });
            for (k, v) in [
                ("gid", gid.map(|g| json!(g))),
                ("exe_sha256", digest.map(Value::from)),
                ("cgroup", cgroup.clone().map(Value::from)),
            ] {
                if let (Some(v), Some(obj)) = (v, params.as_object_mut()) {
                    obj.insert(k.to_string(), v);
                }
            }
            print_json(&call(admin, "admin.agent_provision", params)?)
        }
        AgentCmd::List { json } => {
            let v = call(admin, "admin.agent_list", json!({}))?;
            if *json {
                return print_json(&v);
            }
            println!(
                "{:<24} {:<8} {:<24} {:<8} KID",
                "AGENT", "STATUS", "USER", "UID"
            );
            for a in field(&v, "/agents").as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<8} {:<24} {:<8} {}",
                    field(a, "/agent").as_str().unwrap_or("?"),
                    field(a, "/status").as_str().unwrap_or("?"),
                    field(a, "/user").as_str().unwrap_or("?"),
                    field(a, "/selectors/uid").to_string(),
                    field(a, "/key/kid").as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        AgentCmd::Show { agent } => {
            print_json(&call(admin, "admin.agent_show", json!({ "agent": agent }))?)
        }
        AgentCmd::Freeze { agent } => status_line(&call(
            admin,
            "admin.agent_freeze",
            json!({ "agent": agent }),
        )?),
        AgentCmd::Unfreeze { agent } => status_line(&call(
            admin,
            "admin.agent_unfreeze",
            json!({ "agent": agent }),
        )?),
        AgentCmd::Retire { agent } => status_line(&call(
            admin,
            "admin.agent_retire",
            json!({ "agent": agent }),
        )?),
        AgentCmd::Csr { agent, subject } => {
            let v = call(
                admin,
                "admin.agent_csr",
                json!({ "agent": agent, "subject": subject }),
            )?;
            print!(
                "{}",
                field(&v, "/csr")
                    .as_str()
                    .ok_or_else(|| anyhow!("the daemon returned no CSR"))?
            );
            Ok(())
        }
        AgentCmd::CertImport { agent, file } => {
            let pem = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            print_json(&call(
                admin,
                "admin.agent_cert_import",
                json!({ "agent": agent, "certificate": pem }),
            )?)
        }
    }
}

/// Parses a duration such as `90s`, `15m`, `12h` or `7d` into seconds.
fn parse_duration(text: &str) -> Result<u64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow!("{text:?} is not a duration such as 90s, 15m, 12h or 7d"))?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{text:?}: the unit must be s, m, h or d"),
    };
    n.checked_mul(scale)
        .ok_or_else(|| anyhow!("{text:?} is too long"))
}

/// Parses a time: Unix seconds (10 digits or more) or a duration from now.
fn parse_time(text: &str) -> Result<i64> {
    if text.len() >= 10 && text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(text.parse()?);
    }
    Ok(unix_now().saturating_add(i64::try_from(parse_duration(text)?)?))
}

fn voucher_cmd(cli: &Cli, cmd: &VoucherCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        VoucherCmd::Issue {
            agent,
            level,
            currency,
            max_amount,
            min_amount,
            budget,
            max_payments,
            payees,
            categories,
            funds_carrier,
            not_before,
            expires,
            report_within,
            conditions,
            json: as_json,
        } => {
            let mut params = json!({
                "agent": agent,
                "level": level,
                "currency": currency,
                "payees": payees,
                "categories": categories,
                "conditions": conditions,
                "expires_at": parse_time(expires)?,
            });
            let optional = [
                ("max_amount", max_amount.map(Value::from)),
                ("min_amount", min_amount.map(Value::from)),
                ("budget", budget.map(Value::from)),
                ("max_payments", max_payments.map(Value::from)),
                ("funds_carrier", funds_carrier.clone().map(Value::from)),
                (
                    "not_before",
                    not_before
                        .as_deref()
                        .map(parse_time)
                        .transpose()?
                        .map(Value::from),
                ),
                (
                    "report_within_s",
                    report_within
                        .as_deref()
                        .map(parse_duration)
                        .transpose()?
                        .map(Value::from),
                ),
            ];
            for (k, v) in optional {
                if let (Some(v), Some(obj)) = (v, params.as_object_mut()) {
                    obj.insert(k.to_string(), v);
                }
            }
            let v = call(admin, "admin.voucher_issue", params)?;
            if *as_json {
                return print_json(
                    &json!({ "id": field(&v, "/id"), "digest": field(&v, "/digest"), "voucher": field(&v, "/voucher") }),
                );
            }
            println!("{}", field(&v, "/voucher").as_str().unwrap_or_default());
            Ok(())
        }
        VoucherCmd::List {
            agent,
            json: as_json,
        } => {
            let v = call(admin, "admin.voucher_list", json!({ "agent": agent }))?;
            if *as_json {
                return print_json(&v);
            }
            println!(
                "{:<34} {:<20} {:<8} {:>12} {:>8} EXPIRES",
                "ID", "AGENT", "STATUS", "SPENT", "PAYMENTS"
            );
            for x in field(&v, "/vouchers").as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<20} {:<8} {:>12} {:>8} {}",
                    field(x, "/id").as_str().unwrap_or("?"),
                    field(x, "/agent").as_str().unwrap_or("?"),
                    field(x, "/status").as_str().unwrap_or("?"),
                    field(x, "/spent").to_string(),
                    field(x, "/payments").to_string(),
                    field(x, "/expires_at")
                );
            }
            Ok(())
        }
        VoucherCmd::Show { voucher } => print_json(&call(
            admin,
            "admin.voucher_show",
            json!({ "voucher": voucher }),
        )?),
        VoucherCmd::Revoke { voucher } => {
            let v = call(admin, "admin.voucher_revoke", json!({ "voucher": voucher }))?;
            println!(
                "voucher {}: {}",
                field(&v, "/id").as_str().unwrap_or("?"),
                field(&v, "/status").as_str().unwrap_or("?")
            );
            Ok(())
        }
        VoucherCmd::Revoked { export } => {
            let v = call(admin, "admin.voucher_revocations", json!({}))?;
            let list = field(&v, "/list").as_str().unwrap_or_default();
            write_output(export, &format!("{list}\n"))?;
            eprintln!("revocation list: {} voucher(s)", field(&v, "/count"));
            Ok(())
        }
        VoucherCmd::Import { file } => {
            let text = read_input(file)?;
            print_json(&call(
                admin,
                "admin.voucher_import",
                json!({ "voucher": text.trim() }),
            )?)
        }
        VoucherCmd::Delegate {
            voucher,
            agent,
            constraints,
            expires,
            json: as_json,
        } => {
            let constraints: Value = serde_json::from_str(&read_input(constraints)?)
                .context("the constraints file is not JSON")?;
            let mut params =
                json!({ "voucher": voucher, "agent": agent, "constraints": constraints });
            if let (Some(t), Some(obj)) = (expires, params.as_object_mut()) {
                obj.insert("expires_at".into(), parse_time(t)?.into());
            }
            let v = call(&cli.agent_socket, "voucher.delegate", params)?;
            if *as_json {
                return print_json(&v);
            }
            println!("{}", field(&v, "/voucher").as_str().unwrap_or_default());
            Ok(())
        }
    }
}

fn write_output(path: &Path, text: &str) -> Result<()> {
    if path == Path::new("-") {
        print!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

fn issuer_cmd(cli: &Cli, cmd: &IssuerCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        IssuerCmd::Add { name, jwk } => {
            let jwk: Value = serde_json::from_str(&read_input(jwk)?)
                .with_context(|| format!("{} is not JSON", jwk.display()))?;
            let v = call(
                admin,
                "admin.issuer_add",
                json!({ "name": name, "jwk": jwk }),
            )?;
            println!(
                "issuer {}: trusted (kid {})",
                field(&v, "/name").as_str().unwrap_or("?"),
                field(&v, "/kid").as_str().unwrap_or("?")
            );
            Ok(())
        }
        IssuerCmd::List => print_json(&call(admin, "admin.issuer_list", json!({}))?),
        IssuerCmd::Remove { name } => {
            call(admin, "admin.issuer_remove", json!({ "name": name }))?;
            println!("issuer {name}: removed");
            Ok(())
        }
    }
}

/// Parses `NAME=VALUE` facts: integers and booleans as such, anything else as text.
fn parse_facts(facts: &[String]) -> Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    for f in facts {
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("--fact {f:?}: expected NAME=VALUE"))?;
        let value = match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            v => v
                .parse::<i64>()
                .map_or_else(|_| Value::from(v), Value::from),
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

fn wait_ms(wait: Option<&str>) -> Result<u64> {
    Ok(wait
        .map(parse_duration)
        .transpose()?
        .unwrap_or(0)
        .saturating_mul(1000))
}

fn payment_cmd(cli: &Cli, cmd: &PaymentCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    let agent = &cli.agent_socket;
    match cmd {
        PaymentCmd::Authorize {
            voucher,
            amount,
            currency,
            payee,
            category,
            transaction_id,
            aud,
            nonce,
            facts,
            wait,
        } => {
            let text;
            let voucher = if Path::new(voucher).is_file() {
                text = read_input(Path::new(voucher))?;
                text.trim()
            } else {
                voucher.as_str()
            };
            let mut client = Client::connect(agent).map_err(|e| hint(e, agent))?;
            let v = client.call(
                "payment.authorize",
                json!({
                    "voucher": voucher,
                    "payment": {
                        "amount": amount, "currency": currency, "payee": payee,
                        "category": category, "transaction_id": transaction_id,
                    },
                    "aud": aud,
                    "nonce": nonce,
                    "facts": parse_facts(facts)?,
                }),
            )?;
            let waiting = wait_ms(wait.as_deref())?;
            if field(&v, "/status") == "pending_confirmation" && waiting > 0 {
                eprintln!(
                    "payment {} waits for an operator (arictl payment confirm|reject) ...",
                    field(&v, "/decision").as_str().unwrap_or("?")
                );
                let v = client.call(
                    "payment.status",
                    json!({ "decision": field(&v, "/decision"), "wait_ms": waiting }),
                )?;
                return print_json(&v);
            }
            print_json(&v)
        }
        PaymentCmd::Status { decision, wait } => print_json(&call(
            agent,
            "payment.status",
            json!({ "decision": decision, "wait_ms": wait_ms(wait.as_deref())? }),
        )?),
        PaymentCmd::Report {
            decision,
            outcome,
            reference,
        } => print_json(&call(
            agent,
            "payment.report",
            json!({ "decision": decision, "outcome": outcome, "reference": reference }),
        )?),
        PaymentCmd::List {
            status,
            voucher,
            json: as_json,
        } => {
            let v = call(
                admin,
                "admin.payment_list",
                json!({ "status": status, "voucher": voucher }),
            )?;
            if *as_json {
                return print_json(&v);
            }
            println!(
                "{:<34} {:<22} {:>10} {:<4} {:<20} REASON",
                "DECISION", "STATUS", "AMOUNT", "CUR", "PAYEE"
            );
            for x in field(&v, "/payments").as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<22} {:>10} {:<4} {:<20} {}",
                    field(x, "/decision").as_str().unwrap_or("?"),
                    field(x, "/status").as_str().unwrap_or("?"),
                    field(x, "/amount").to_string(),
                    field(x, "/currency").as_str().unwrap_or("?"),
                    field(x, "/payee").as_str().unwrap_or("?"),
                    field(x, "/reason").as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        PaymentCmd::Show { decision } => print_json(&call(
            admin,
            "admin.payment_show",
            json!({ "decision": decision }),
        )?),
        PaymentCmd::Confirm { decision } => {
            let v = call(
                admin,
                "admin.payment_confirm",
                json!({ "decision": decision }),
            )?;
            println!(
                "payment {decision}: {}",
                field(&v, "/status").as_str().unwrap_or("?")
            );
            Ok(())
        }
        PaymentCmd::Reject { decision, note } => {
            let v = call(
                admin,
                "admin.payment_reject",
                json!({ "decision": decision, "note": note }),
            )?;
            println!(
                "payment {decision}: {} ({})",
                field(&v, "/status").as_str().unwrap_or("?"),
                field(&v, "/reason").as_str().unwrap_or("?")
            );
            Ok(())
        }
    }
}

fn trusted_keys(files: &[PathBuf]) -> Result<Vec<ari::jose::PublicKey>> {
    files
        .iter()
        .map(|f| {
            Jwk::from_json(&read_input(f)?)
                .and_then(|j| j.to_public_key())
                .with_context(|| format!("{} is not a P-256 public JWK", f.display()))
        })
        .collect()
}

fn revocation_list(
    file: Option<&PathBuf>,
    keys: &[ari::jose::PublicKey],
) -> Result<Option<voucher::revocation::RevocationList>> {
    file.map(|f| {
        voucher::revocation::verify(read_input(f)?.trim(), keys)
            .with_context(|| format!("revocation list {}", f.display()))
    })
    .transpose()
}

fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn log_cmd(cli: &Cli, cmd: &LogCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        LogCmd::Export { out, from, to, db } => {
            let mut offline = db.as_ref().map(|p| OfflineLog::open(p)).transpose()?;
            // Offline nothing can sign: an end without a checkpoint is refused up front.
            let to = match &offline {
                Some(log) => Some(log.signed_end(*from, *to)?),
                None => *to,
            };
            let mut writer = ari::ledger::export::DirWriter::create(out)
                .with_context(|| format!("cannot create an export in {}", out.display()))?;
            let mut next = *from;
            // Whether the last page held a checkpoint of the export's end.
            let mut ends_signed;
            loop {
                let page = match &mut offline {
                    Some(log) => log.page(next, to)?,
                    None => {
                        let params = json!({ "from": next, "to": to });
                        serde_json::from_value(call(admin, "admin.log_export", params)?)?
                    }
                };
                writer.add(&page)?;
                next = page.to;
                ends_signed =
                    page.from == page.to || page.checkpoints.iter().any(|c| c.size == page.to);
                if page.to >= page.end || page.entries.is_empty() {
                    break;
                }
            }
            if !ends_signed {
                bail!(
                    "the export in {} ends at entry {next}, which no checkpoint covers: a verifier \
                     would refuse it; remove the directory and export again",
                    out.display()
                );
            }
            let m = writer.finish()?;
            eprintln!(
                "exported entries {}..{} of {} to {}",
                m.from,
                m.to,
                m.origin,
                out.display()
            );
            Ok(())
        }
        LogCmd::Checkpoint => print_json(&call(admin, "evidence.checkpoint", json!({}))?),
        LogCmd::Entry { index } => {
            print_json(&call(admin, "evidence.entry", json!({ "index": index }))?)
        }
        LogCmd::Proof { index, tree_size } => print_json(&call(
            admin,
            "evidence.inclusion",
            json!({ "index": index, "tree_size": tree_size }),
        )?),
    }
}

/// A copy of the state database read directly, for exports without the daemon.
struct OfflineLog {
    conn: rusqlite::Connection,
    origin: String,
    key: ari::jose::PublicKey,
}

impl OfflineLog {
    fn open(path: &Path) -> Result<Self> {
        let conn =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("cannot open {}", path.display()))?;
        let key: Vec<u8> = conn
            .query_row(
                "SELECT public_key FROM daemon_key WHERE role = 'log'",
                [],
                |r| r.get(0),
            )
            .context("the database has no log key")?;
        let key = ari::jose::PublicKey::from_sec1(&key)?;
        let latest = ari::ledger::log::latest_checkpoint(&conn)?
            .ok_or_else(|| anyhow!("the database holds no checkpoint"))?;
        let origin = latest.note.lines().next().unwrap_or_default().to_string();
        Ok(Self { conn, origin, key })
    }

    /// The end of an export from `from`: `to`, or the newest checkpoint's size, refused when
    /// no checkpoint of that size is stored (an export must end on a signed checkpoint).
    fn signed_end(&self, from: u64, to: Option<u64>) -> Result<u64> {
        let end = match to {
            Some(n) => n,
            None => ari::ledger::log::latest_checkpoint(&self.conn)?.map_or(0, |c| c.size),
        };
        if end <= from || !ari::ledger::log::checkpoints(&self.conn, end, end)?.is_empty() {
            return Ok(end);
        }
        let below = ari::ledger::log::checkpoints(&self.conn, 0, end)?
            .last()
            .map(|c| c.size);
        let above = ari::ledger::log::checkpoints(&self.conn, end, u64::MAX)?
            .first()
            .map(|c| c.size);
        let nearest = [below, above]
            .into_iter()
            .flatten()
            .map(|n| format!("--to {n}"))
            .collect::<Vec<_>>()
            .join(" or ");
        bail!(
            "the database holds no checkpoint of size {end}, and an export must end on a signed \
             checkpoint (offline, nothing can sign one): use {}, or export from the running \
             daemon, which signs one",
            if nearest.is_empty() {
                "the daemon".to_string()
            } else {
                nearest
            }
        )
    }

    fn page(&mut self, from: u64, to: Option<u64>) -> Result<evidence::export::Page> {
        let end = match to {
            Some(n) => n,
            None => ari::ledger::log::latest_checkpoint(&self.conn)?.map_or(0, |c| c.size),
        };
        Ok(ari::ledger::export::read_page(
            &self.conn,
            &self.origin,
            &self.key,
            from,
            end,
            5_000,
        )?)
    }
}

fn verify_cmd(cmd: &VerifyCmd) -> Result<()> {
    match cmd {
        VerifyCmd::Voucher {
            trust,
            revoked,
            files,
        } => {
            let keys = trusted_keys(trust)?;
            let list = revocation_list(revoked.as_ref(), &keys)?;
            let texts = files
                .iter()
                .map(|f| read_input(f).map(|t| t.trim().to_string()))
                .collect::<Result<Vec<_>>>()?;
            let chain: Vec<&str> = texts.iter().map(String::as_str).collect();
            let claims = voucher::verify_chain(&chain, &keys, unix_now())?;
            if let Some(list) = &list
                && let Some((i, _)) = chain
                    .iter()
                    .enumerate()
                    .find(|(_, v)| list.contains(&voucher::digest(v)))
            {
                bail!("voucher {i}: revoked (on the revocation list)");
            }
            let leaf = claims.last().ok_or_else(|| anyhow!("empty chain"))?;
            eprintln!(
                "voucher OK: {} link(s), agent {}, user {}",
                claims.len(),
                leaf.agent,
                leaf.sub
            );
            print_json(&serde_json::to_value(leaf)?)
        }
        VerifyCmd::Payment {
            trust,
            revoked,
            at,
            file,
        } => {
            let keys = trusted_keys(trust)?;
            let list = revocation_list(revoked.as_ref(), &keys)?;
            let receipt: ari::payment::Receipt = serde_json::from_str(&read_input(file)?)
                .context("the receipt is not the JSON `arictl payment authorize` prints")?;
            let v =
                ari::payment::verify(&receipt, &keys, list.as_ref(), at.unwrap_or_else(unix_now))?;
            eprintln!(
                "payment OK: {} {} to {} by agent {} for user {}, {} voucher(s)",
                v.claims.amount,
                v.claims.currency,
                v.claims.payee,
                v.claims.agent,
                v.claims.sub,
                v.chain.len()
            );
            print_json(&serde_json::to_value(&v.claims)?)
        }
        VerifyCmd::Log {
            dir,
            log_key,
            since,
            allow_unsigned_tail,
        } => {
            use evidence::export::Tail;
            let key = Jwk::from_json(&read_input(log_key)?)?.to_public_key()?;
            let since = since.as_ref().map(|f| read_input(f)).transpose()?;
            let tail = if *allow_unsigned_tail {
                Tail::Report
            } else {
                Tail::Refuse
            };
            let summary = evidence::export::verify_dir_with(dir, &key, since.as_deref(), tail)
                .map_err(|e| match e.check() {
                    evidence::export::SIGNED_TAIL => anyhow!(e).context(
                        "the export does not end on a signed checkpoint; export it again \
                         (`arictl log export` ends on one), or pass --allow-unsigned-tail to \
                         list the entries no signature covers",
                    ),
                    _ => anyhow!(e),
                })?;
            let extends = if since.is_some() {
                ", extends the --since checkpoint"
            } else {
                ""
            };
            match summary.unsigned_tail {
                None => eprintln!(
                    "log OK: {} entries ({}..{}) of {}, {} checkpoint(s) checked{extends}",
                    summary.to - summary.from,
                    summary.from,
                    summary.to,
                    summary.origin,
                    summary.checkpoints,
                ),
                Some(t) => {
                    if summary.to == summary.from {
                        eprintln!(
                            "log NOT verified: no checkpoint of {} covers any of its entries",
                            summary.origin
                        );
                    } else {
                        eprintln!(
                            "log verified only up to its newest checkpoint: {} entries ({}..{}) of {}, {} checkpoint(s) checked{extends}",
                            summary.to - summary.from,
                            summary.from,
                            summary.to,
                            summary.origin,
                            summary.checkpoints,
                        );
                    }
                    eprintln!(
                        "WARNING: {} past the newest checkpoint {} NOT covered by any signature (entries {}..{}: read and linked, but anyone could have written them)",
                        if t.len() == 1 {
                            "1 entry".to_string()
                        } else {
                            format!("{} entries", t.len())
                        },
                        if t.len() == 1 { "is" } else { "are" },
                        t.from,
                        t.to
                    );
                }
            }
            print_json(&serde_json::to_value(&summary)?)
        }
        VerifyCmd::Inclusion {
            entry,
            proof,
            checkpoint,
            log_key,
        } => {
            let key = Jwk::from_json(&read_input(log_key)?)?.to_public_key()?;
            let bytes =
                std::fs::read(entry).with_context(|| format!("cannot read {}", entry.display()))?;
            let bytes = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let proof: evidence::export::InclusionProof = serde_json::from_str(&read_input(proof)?)
                .context("the proof is not the JSON `arictl log proof` prints")?;
            let cp =
                evidence::export::verify_inclusion(bytes, &proof, &read_input(checkpoint)?, &key)?;
            eprintln!(
                "inclusion OK: entry {} is in {} at size {}",
                proof.index, cp.origin, cp.size
            );
            Ok(())
        }
        VerifyCmd::Attestation {
            bundle,
            ak,
            policy,
            state,
            nonce,
        } => verify_attestation(bundle, ak, policy, state.as_deref(), nonce.as_deref()),
        VerifyCmd::Attest { jwk, nonce, file } => {
            let key = Jwk::from_json(&read_input(jwk)?)?.to_public_key()?;
            let text = read_input(file)?;
            let token = text.trim();
            // Accept either the bare JWS or the JSON that `arictl attest` prints.
            let token = match serde_json::from_str::<Value>(token) {
                Ok(v) => field(&v, "/attestation")
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("no \"attestation\" member"))?,
                Err(_) => token.to_owned(),
            };
            let claims = attest::verify(&token, &key, nonce)?;
            eprintln!(
                "attestation OK: agent {} (user {}), key {}",
                claims.evidence.agent.id, claims.evidence.agent.user, claims.evidence.key.kid
            );
            print_json(&serde_json::to_value(&claims)?)
        }
    }
}

/// The qualifying data (extraData) of a `TPMS_ATTEST`.
fn tss_qualification(attest: &[u8]) -> Result<Vec<u8>> {
    use tss_esapi::traits::UnMarshall;
    let a = tss_esapi::structures::Attest::unmarshall(attest)
        .map_err(|e| anyhow!("unreadable TPMS_ATTEST: {e}"))?;
    Ok(a.extra_data().value().to_vec())
}

/// Reads a bundle from a receipt, `arictl attest` output, the bundle JSON, or its base64url.
fn read_bundle(path: &Path) -> Result<attest::Bundle> {
    let text = read_input(path)?;
    let text = text.trim();
    let b64 = match serde_json::from_str::<Value>(text) {
        Ok(v) if v.get("typ").is_some() => {
            return serde_json::from_value(v).context("not an attestation bundle");
        }
        Ok(v) => ["/bundle", "/attestation"]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| anyhow!("no \"bundle\" or \"attestation\" member"))?,
        Err(_) => text.to_owned(),
    };
    let bytes = ari::jose::b64url_decode(&b64).context("the bundle is not base64url")?;
    serde_json::from_slice(&bytes).context("not an attestation bundle")
}

/// Reads a public key given as PEM, JWK, or `arictl tpm ak` output.
fn read_public_key(path: &Path) -> Result<ari::jose::PublicKey> {
    let text = read_input(path)?;
    if text.trim_start().starts_with("-----BEGIN") {
        return Ok(ari::jose::PublicKey::from_pem(&text)?);
    }
    let v: Value = serde_json::from_str(&text).context("not PEM or JSON")?;
    let jwk = v.get("jwk").cloned().unwrap_or(v);
    Ok(serde_json::from_value::<Jwk>(jwk)
        .context("not a JWK")?
        .to_public_key()?)
}

fn verify_attestation(
    bundle: &Path,
    ak: &Path,
    policy: &Path,
    state: Option<&Path>,
    nonce: Option<&str>,
) -> Result<()> {
    use ari::attest::tpm::{self, Seen};
    let bundle = read_bundle(bundle)?;
    let ak = read_public_key(ak)?;
    let policy: tpm::Policy = toml::from_str(
        &std::fs::read_to_string(policy)
            .with_context(|| format!("cannot read {}", policy.display()))?,
    )
    .with_context(|| format!("{} is not a valid policy", policy.display()))?;
    if let Some(nonce) = nonce
        && bundle.binding != tpm::challenge_binding(nonce, &bundle.evidence.key.kid)
    {
        bail!("attestation REJECTED by check binding: the bundle does not answer this nonce");
    }
    let mut seen: std::collections::BTreeMap<String, Seen> = match state {
        Some(p) if p.exists() => serde_json::from_str(&std::fs::read_to_string(p)?)
            .with_context(|| format!("{} is not a state file", p.display()))?,
        _ => Default::default(),
    };
    let kid = ak.thumbprint();
    let v = tpm::verify(&bundle, &ak, &policy, seen.get(&kid).copied())
        .map_err(|f| anyhow!("attestation REJECTED by check {}: {}", f.check, f.detail))?;
    if let (Some(p), Some(now)) = (state, v.seen) {
        seen.insert(kid, now);
        std::fs::write(p, serde_json::to_string_pretty(&seen)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if v.tpm {
        eprintln!(
            "attestation OK: agent {} key {} in the TPM of AK {}, {} PCR(s) quoted, batch of {}",
            bundle.evidence.agent.id,
            bundle.evidence.key.kid,
            ak.thumbprint(),
            v.pcrs.len(),
            v.batch_size
        );
    } else {
        eprintln!(
            "attestation OK without TPM evidence: no TPM evidence (key store {}), which the policy allows",
            bundle.evidence.key.store
        );
    }
    print_json(&serde_json::to_value(&v)?)
}

/// A throwaway dev daemon, stopped when dropped.
struct ThrowawayDaemon {
    child: std::process::Child,
    dir: PathBuf,
}

impl ThrowawayDaemon {
    fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// With extra `arid dev` arguments (e.g. `--backend tpm`).
    fn start_with(extra: &[&str]) -> Result<Self> {
        let mut raw = [0u8; 6];
        getrandom::fill(&mut raw).map_err(|e| anyhow!("no randomness: {e}"))?;
        let dir = std::env::temp_dir().join(format!("ari-bench-{}", hex::encode(raw)));
        // The invoking user's alone, whatever the umask: `arid dev` refuses anything looser.
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let arid = std::env::current_exe()?.with_file_name("arid");
        let log = std::fs::File::create(dir.join("arid.log"))?;
        let child = std::process::Command::new(&arid)
            .arg("dev")
            .args(extra)
            .arg("--state-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", arid.display()))?;
        let me = Self { child, dir };
        let admin = me.dir.join("admin.sock");
        for _ in 0..300 {
            if let Ok(mut c) = Client::connect(&admin)
                && c.call("admin.status", json!({})).is_ok()
            {
                return Ok(me);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        bail!(
            "the throwaway daemon did not come up; see {}",
            me.dir.join("arid.log").display()
        )
    }
}

impl Drop for ThrowawayDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Finds (or provisions) the agent this process is, and returns its id.
fn bench_agent(admin: &Path, agent_socket: &Path) -> Result<String> {
    match Client::connect(agent_socket)?.call("agent.identity", json!({})) {
        Ok(v) => return Ok(field(&v, "/agent").as_str().unwrap_or_default().to_owned()),
        Err(ClientError::Remote(e)) if e.reason == "unknown_caller" => {}
        Err(e) => return Err(e.into()),
    }
    let digest = sha256_file(&std::env::current_exe()?)?;
    let id = format!("bench-{}", digest.get(..12).unwrap_or("0"));
    call(
        admin,
        "admin.agent_provision",
        json!({ "agent": id, "user": "bench", "uid": nix::unistd::getuid().as_raw(), "exe_sha256": digest }),
    )?;
    Ok(id)
}

/// The daemon a bench drives: the running one of `--state-dir`, or a throwaway one (kept
/// alive by the returned handle).
fn bench_daemon(args: &BenchArgs) -> Result<(Option<ThrowawayDaemon>, PathBuf)> {
    Ok(match &args.state_dir {
        Some(d) => (None, std::fs::canonicalize(d)?),
        None => {
            let d = ThrowawayDaemon::start()?;
            let dir = d.dir.clone();
            (Some(d), dir)
        }
    })
}

/// The daemon's process id: the throwaway daemon's child, else the pid its lock file records.
fn bench_daemon_pid(daemon: Option<&ThrowawayDaemon>, layout: &dev::DevLayout) -> Option<u32> {
    match daemon {
        Some(d) => Some(d.child.id()),
        None => std::fs::read_to_string(&layout.lock)
            .ok()
            .and_then(|s| s.trim().parse().ok()),
    }
}

/// Refuses client counts the daemon would leave waiting in the listen backlog, or refuse as more
/// than one uid's share.
fn bench_check_clients(layout: &dev::DevLayout, clients: &[usize]) -> Result<()> {
    if clients.is_empty() {
        bail!("--clients needs at least one count");
    }
    let limits = ari::config::Config::load(&layout.config)?.limits;
    // Every client is this process, so one uid: its share caps the count too.
    let (key, cap) = if limits.max_connections_per_uid < limits.max_connections {
        ("max_connections_per_uid", limits.max_connections_per_uid)
    } else {
        ("max_connections", limits.max_connections)
    };
    if let Some(n) = clients.iter().find(|&&n| n > cap) {
        bail!(
            "--clients {n} is more than the daemon's limits.{key} ({cap}); raise it in {} and restart the daemon (with --state-dir) first",
            layout.config.display()
        );
    }
    Ok(())
}

/// Prints one report per client count: JSON lines, the single report's text, or a sweep table.
fn bench_print<R: serde::Serialize>(
    json: bool,
    rows: &[R],
    one: impl Fn(&R) -> String,
    sweep: impl Fn(&[R]) -> String,
) -> Result<()> {
    if json {
        for r in rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else if let [r] = rows {
        print!("{}", one(r));
    } else {
        print!("{}", sweep(rows));
    }
    Ok(())
}

/// A fresh scratch directory for a bench.
fn bench_scratch(what: &str) -> Result<PathBuf> {
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).map_err(|e| anyhow!("no randomness: {e}"))?;
    let dir = std::env::temp_dir().join(format!("ari-bench-{what}-{}", hex::encode(raw)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Issues a voucher that will not run out during a bench.
fn bench_voucher(admin: &Path, agent: &str) -> Result<String> {
    let v = call(
        admin,
        "admin.voucher_issue",
        json!({
            "agent": agent, "level": "L5", "currency": "CNY",
            "budget": i64::MAX / 2, "max_amount": 100,
            "expires_at": unix_now() + 86_400,
        }),
    )?;
    Ok(field(&v, "/id").as_str().unwrap_or_default().into())
}

/// One `bench authorize --backend tpm` run on its own daemon and software TPM.
fn bench_tpm_run(args: &BenchArgs, clients: usize, quote_batch: usize) -> Result<bench::TpmRun> {
    let daemon = ThrowawayDaemon::start_with(&[
        "--backend",
        "tpm",
        "--quote-batch",
        &quote_batch.to_string(),
    ])?;
    let layout = dev::DevLayout::new(&daemon.dir)?;
    bench_check_clients(&layout, &[clients])?;
    let agent = bench_agent(&layout.admin_socket, &layout.agent_socket)?;
    let voucher = bench_voucher(&layout.admin_socket, &agent)?;
    let counters = || -> Result<(u64, u64)> {
        let s = call(&layout.admin_socket, "admin.status", json!({}))?;
        Ok((
            field(&s, "/tpm/quotes").as_u64().unwrap_or(0),
            field(&s, "/tpm/commands").as_u64().unwrap_or(0),
        ))
    };
    if !args.json {
        eprintln!(
            "driving payment.authorize on swtpm ({}) with {clients} clients for {} s ...",
            if quote_batch > 1 {
                "batched quotes"
            } else {
                "one quote per authorization"
            },
            args.seconds
        );
    }
    let pid = daemon.child.id();
    let before = counters()?;
    let (figures, costs) = bench::drive_measured(
        &layout.agent_socket,
        &bench::Workload::Authorize(voucher),
        clients.max(1),
        args.seconds,
        Some(pid),
        bench::process::child_named(pid, "swtpm"),
    )?;
    let after = counters()?;
    Ok(bench::TpmRun {
        figures,
        quotes: after.0.saturating_sub(before.0),
        commands: after.1.saturating_sub(before.1),
        daemon_cpu_us_per_op: costs.daemon_cpu_us_per_op,
        tpm_cpu_us_per_op: costs.tpm_cpu_us_per_op,
    })
}

fn bench_authorize_tpm(args: &BenchArgs) -> Result<()> {
    let mut reports = Vec::new();
    for &clients in &args.clients {
        let batched = bench_tpm_run(args, clients, 64)?;
        let unbatched = bench_tpm_run(args, clients, 1)?;
        if !args.json {
            eprintln!(
                "raw TPM2_Sign on a software TPM of its own, {clients} threads for {} s ...",
                args.seconds
            );
        }
        let scratch = bench_scratch("tpm")?;
        let raw = bench::raw_tpm_sign(&scratch, clients, args.seconds);
        let _ = std::fs::remove_dir_all(&scratch);
        let raw = raw.map_err(|e| anyhow!("raw TPM signing failed: {e}"))?;
        reports.push(bench::TpmReport::new(
            clients,
            args.seconds,
            batched,
            unbatched,
            raw,
        ));
    }
    bench_print(args.json, &reports, bench::TpmReport::text, |rows| {
        rows.iter().map(bench::TpmReport::text).collect()
    })
}

fn bench_attest(args: &BenchArgs, kind: BenchKind) -> Result<()> {
    if args.backend == BenchBackend::Tpm {
        return match kind {
            BenchKind::Authorize => bench_authorize_tpm(args),
            BenchKind::Attest => bail!("--backend tpm is measured by `bench authorize`"),
        };
    }
    let (daemon, dir) = bench_daemon(args)?;
    let layout = dev::DevLayout::new(&dir)?;
    bench_check_clients(&layout, &args.clients)?;
    let pid = bench_daemon_pid(daemon.as_ref(), &layout);
    let agent = bench_agent(&layout.admin_socket, &layout.agent_socket)?;
    let workload = match kind {
        BenchKind::Attest => bench::Workload::Attest,
        BenchKind::Authorize => {
            bench::Workload::Authorize(bench_voucher(&layout.admin_socket, &agent)?)
        }
    };
    let mut socket = Vec::new();
    for &clients in &args.clients {
        if !args.json {
            eprintln!(
                "driving {} as agent {agent} with {clients} clients for {} s ...",
                workload.method(),
                args.seconds
            );
        }
        let run = bench::drive_measured(
            &layout.agent_socket,
            &workload,
            clients.max(1),
            args.seconds,
            pid,
            None,
        )?;
        socket.push((clients, run));
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    if !args.json {
        eprintln!(
            "raw CKM_ECDSA signing with {threads} threads for {} s ...",
            args.seconds
        );
    }
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "raw", "--state-dir"])
        .arg(&dir)
        .args(["--key-label", &format!("ari-agent:{agent}")])
        .args([
            "--threads",
            &threads.to_string(),
            "--seconds",
            &args.seconds.to_string(),
        ])
        .env("SOFTHSM2_CONF", &layout.softhsm_conf)
        .output()?;
    if !out.status.success() {
        bail!(
            "raw signing failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let raw: bench::Figures = serde_json::from_slice(&out.stdout)?;
    let reports: Vec<bench::Report> = socket
        .into_iter()
        .map(|(clients, run)| {
            bench::Report::new(workload.method(), clients, args.seconds, run, raw, threads)
        })
        .collect();
    bench_print(
        args.json,
        &reports,
        bench::Report::text,
        bench::Report::sweep_text,
    )
}

/// The ledger writer's (jobs, group commits) so far, from `admin.metrics`.
fn bench_group_commits(admin: &Path) -> Result<(f64, f64)> {
    let v = call(admin, "admin.metrics", json!({}))?;
    bench::group_commits(field(&v, "/text").as_str().unwrap_or_default())
        .ok_or_else(|| anyhow!("the daemon's metrics have no ledger group commits"))
}

fn bench_log(args: &BenchArgs) -> Result<()> {
    if args.backend == BenchBackend::Tpm {
        bail!("--backend tpm is measured by `bench authorize`");
    }
    let (daemon, dir) = bench_daemon(args)?;
    let layout = dev::DevLayout::new(&dir)?;
    bench_check_clients(&layout, &args.clients)?;
    let pid = bench_daemon_pid(daemon.as_ref(), &layout);
    let agent = bench_agent(&layout.admin_socket, &layout.agent_socket)?;
    let db = dir.join("state/ari.db");
    let mut reports = Vec::new();
    for &clients in &args.clients {
        if !args.json {
            eprintln!(
                "driving evidence.record as agent {agent} with {clients} clients for {} s ...",
                args.seconds
            );
        }
        let before = bench::log_footprint(&db)?;
        let commits_before = bench_group_commits(&layout.admin_socket)?;
        let (figures, costs) = bench::drive_measured(
            &layout.agent_socket,
            &bench::Workload::Record,
            clients.max(1),
            args.seconds,
            pid,
            None,
        )?;
        // Let the last checkpoint land before counting.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let after = bench::log_footprint(&db)?;
        let commits_after = bench_group_commits(&layout.admin_socket)?;
        let entries = after.0.saturating_sub(before.0);
        // Entries, not jobs: one job writes a whole batch of statements.
        let groups = commits_after.1 - commits_before.1;
        let entries_per_commit = if groups > 0.0 {
            entries as f64 / groups
        } else {
            0.0
        };
        let bytes_per_entry = after.2.saturating_sub(before.2) as f64 / entries.max(1) as f64;
        let group = (entries_per_commit.round() as usize).max(1);
        let row_bytes = (bytes_per_entry.round() as usize).max(1);
        if !args.json {
            eprintln!(
                "raw SQLite appends, {group} rows of {row_bytes} bytes per commit, for {} s ...",
                args.seconds
            );
        }
        let scratch = dir.join(format!("bench-raw-{}.db", std::process::id()));
        // The client threads are done: the process's CPU is now the baseline's.
        let cpu_before = bench::process::Usage::current();
        let raw = bench::sqlite::raw_append(&scratch, row_bytes, group, args.seconds)
            .map_err(|e| anyhow!("raw SQLite appends failed: {e}"))?;
        let baseline_cpu = cpu_before
            .zip(bench::process::Usage::current())
            .and_then(|(a, b)| a.cpu_us_per_op(&b, raw.ops))
            .unwrap_or(0.0);
        if !args.json {
            eprintln!(
                "floor: agent.identity with {clients} clients for {} s ...",
                args.seconds
            );
        }
        let floor = bench::drive_measured(
            &layout.agent_socket,
            &bench::Workload::Identity,
            clients.max(1),
            args.seconds,
            pid,
            None,
        )?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        reports.push(bench::LogReport {
            clients,
            seconds: args.seconds,
            ops_per_s: figures.ops_per_s,
            p50_us: figures.p50_us,
            p99_us: figures.p99_us,
            entries,
            checkpoints: after.1.saturating_sub(before.1),
            bytes_per_entry,
            group_commits: groups.max(0.0) as u64,
            entries_per_commit,
            baseline_group: group,
            baseline_row_bytes: row_bytes,
            baseline_ops_per_s: raw.ops_per_s,
            baseline_p50_us: raw.p50_us,
            baseline_p99_us: raw.p99_us,
            ratio: bench::ratio(figures.ops_per_s, raw.ops_per_s),
            costs,
            floor: bench::LogFloor::new((&floor.0, &floor.1), baseline_cpu, cores),
        });
    }
    bench_print(
        args.json,
        &reports,
        bench::LogReport::text,
        bench::LogReport::sweep_text,
    )
}

/// Makes a receipt and an inclusion proof on a daemon, then times the offline verifier on them.
fn bench_verify(args: &BenchArgs, log_entries: u64) -> Result<()> {
    if args.backend == BenchBackend::Tpm {
        bail!("--backend tpm is measured by `bench authorize`");
    }
    let (daemon, dir) = bench_daemon(args)?;
    let layout = dev::DevLayout::new(&dir)?;
    let admin = &layout.admin_socket;
    let agent = bench_agent(admin, &layout.agent_socket)?;
    let voucher = bench_voucher(admin, &agent)?;
    let nonce = format!("bench-verify-{}", unix_now());
    let paid = Client::connect(&layout.agent_socket)?.call(
        "payment.authorize",
        bench::authorize_params(&voucher, &nonce),
    )?;
    let at = unix_now();
    let receipt: ari::payment::Receipt =
        serde_json::from_value(paid.clone()).context("the daemon's answer is not a receipt")?;
    let index = field(&paid, "/log_index")
        .as_u64()
        .ok_or_else(|| anyhow!("the authorization names no log index"))?;
    // Entries after the payment's put it inside the tree, where a proof has about log2(size)
    // hashes, rather than at its right edge.
    if log_entries > 0 {
        if !args.json {
            eprintln!("recording {log_entries} statements so the proof has a realistic length ...");
        }
        bench::fill(&layout.agent_socket, log_entries, 8)?;
    }
    let cp = call(
        admin,
        "evidence.checkpoint",
        json!({ "at_least": index + 1 + log_entries, "wait_ms": 10_000 }),
    )?;
    let size = field(&cp, "/size").as_u64().unwrap_or_default();
    let entry = call(admin, "evidence.entry", json!({ "index": index }))?;
    let proof: evidence::export::InclusionProof = serde_json::from_value(call(
        admin,
        "evidence.inclusion",
        json!({ "index": index, "tree_size": size }),
    )?)
    .context("the daemon's inclusion proof is unreadable")?;
    let status = call(admin, "admin.status", json!({}))?;
    let key = |role: &str| -> Result<ari::jose::PublicKey> {
        Ok(serde_json::from_value::<Jwk>(
            field(&status, &format!("/daemon_keys/{role}/jwk")).clone(),
        )?
        .to_public_key()?)
    };
    let artifacts = bench::verify::Artifacts {
        receipt,
        trusted: vec![key("issuer")?],
        at,
        entry: field(&entry, "/entry")
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
        proof,
        checkpoint: field(&cp, "/note").as_str().unwrap_or_default().to_string(),
        log_key: key("log")?,
    };
    // The verifier runs offline: a throwaway daemon is stopped so it does not compete for CPU.
    drop(daemon);
    let mut reports = Vec::new();
    for &threads in &args.clients {
        if !args.json {
            eprintln!(
                "verifying with {threads} threads, then raw ECDSA, {} s each ...",
                args.seconds
            );
        }
        reports
            .push(bench::verify::run(&artifacts, threads, args.seconds).map_err(|e| anyhow!(e))?);
    }
    bench_print(
        args.json,
        &reports,
        bench::verify::VerifyReport::text,
        |rows| rows.iter().map(bench::verify::VerifyReport::text).collect(),
    )
}

fn bench_raw(state_dir: &Path, key_label: &str, threads: usize, seconds: f64) -> Result<()> {
    let layout = dev::DevLayout::new(state_dir)?;
    let module = dev::check_softhsm()?;
    let figures = bench::raw_sign(
        &module,
        dev::DEV_TOKEN_LABEL,
        &layout.pin,
        key_label,
        threads,
        seconds,
    )
    .map_err(|e| anyhow!(e))?;
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Agent(cmd) => agent_cmd(cli, cmd),
        Command::Status {
            json,
            issuer_jwk,
            log_jwk,
        } => {
            let v = call(&cli.admin_socket, "admin.status", json!({}))?;
            match (json, issuer_jwk, log_jwk) {
                (_, true, _) => print_json(field(&v, "/daemon_keys/issuer/jwk")),
                (_, _, true) => print_json(field(&v, "/daemon_keys/log/jwk")),
                (true, _, _) => print_json(&v),
                _ => {
                    print!("{}", status_text(&v));
                    Ok(())
                }
            }
        }
        Command::Metrics => {
            let v = call(&cli.admin_socket, "admin.metrics", json!({}))?;
            print!("{}", field(&v, "/text").as_str().unwrap_or_default());
            Ok(())
        }
        Command::Voucher(cmd) => voucher_cmd(cli, cmd),
        Command::Issuer(cmd) => issuer_cmd(cli, cmd),
        Command::Payment(cmd) => payment_cmd(cli, cmd),
        Command::Identity { jwk } => {
            let v = call(&cli.agent_socket, "agent.identity", json!({}))?;
            print_json(if *jwk { field(&v, "/key/jwk") } else { &v })
        }
        Command::Attest { nonce } => print_json(&call(
            &cli.agent_socket,
            "agent.attest",
            json!({ "nonce": nonce }),
        )?),
        Command::Record { kind, body } => {
            let body = if body == "-" {
                read_input(Path::new("-"))?
            } else {
                body.clone()
            };
            let body: Value = serde_json::from_str(&body).context("--body is not JSON")?;
            print_json(&call(
                &cli.agent_socket,
                "evidence.record",
                json!({ "kind": kind, "body": body }),
            )?)
        }
        Command::Log(cmd) => log_cmd(cli, cmd),
        Command::Verify(cmd) => verify_cmd(cmd),
        Command::Tpm(TpmCmd::QuoteFiles { bundle, out }) => {
            let bundle = read_bundle(bundle)?;
            let quote = bundle
                .evidence
                .tpm
                .quote
                .as_ref()
                .ok_or_else(|| anyhow!("the bundle has no TPM quote"))?;
            let files = attest::tpm::quote_files(quote)?;
            // The quote qualifies the binding digest, or the batch root it is a leaf of.
            let attest = ari::jose::b64url_decode(&quote.attest)?;
            let qualification = tss_qualification(&attest)?;
            std::fs::create_dir_all(out)?;
            std::fs::write(out.join("quote.msg"), &files.message)?;
            std::fs::write(out.join("quote.sig"), &files.signature)?;
            std::fs::write(out.join("pcrs.bin"), &files.pcrs)?;
            std::fs::write(out.join("qualification.hex"), hex::encode(&qualification))?;
            eprintln!(
                "wrote quote.msg, quote.sig, pcrs.bin ({}) and qualification.hex in {}",
                files.pcr_list,
                out.display()
            );
            Ok(())
        }
        Command::Tpm(TpmCmd::Ak { out }) => {
            let v = call(&cli.admin_socket, "admin.tpm_ak", json!({}))?;
            let Some(dir) = out else {
                return print_json(&v);
            };
            std::fs::create_dir_all(dir)?;
            let pem = field(&v, "/pem").as_str().unwrap_or_default();
            std::fs::write(dir.join("ak.pem"), pem)?;
            std::fs::write(
                dir.join("ak.jwk"),
                serde_json::to_string_pretty(field(&v, "/jwk"))?,
            )?;
            let mut wrote = vec!["ak.pem", "ak.jwk"];
            if let Some(ek) = field(&v, "/ek_certificate").as_str() {
                std::fs::write(dir.join("ek.pem"), ek)?;
                wrote.push("ek.pem");
            } else {
                eprintln!("the TPM holds no EK certificate");
            }
            eprintln!("wrote {} in {}", wrote.join(", "), dir.display());
            Ok(())
        }
        Command::Bench(BenchCmd::Attest(args)) => bench_attest(args, BenchKind::Attest),
        Command::Bench(BenchCmd::Authorize(args)) => bench_attest(args, BenchKind::Authorize),
        Command::Bench(BenchCmd::Log(args)) => bench_log(args),
        Command::Bench(BenchCmd::Verify { args, log_entries }) => bench_verify(args, *log_entries),
        Command::Bench(BenchCmd::Proof {
            entries,
            samples,
            json,
        }) => {
            let mut raw = [0u8; 6];
            getrandom::fill(&mut raw).map_err(|e| anyhow!("no randomness: {e}"))?;
            let tmp = std::env::temp_dir().join(format!("ari-bench-proof-{}", hex::encode(raw)));
            std::fs::create_dir_all(&tmp)?;
            if !json {
                eprintln!(
                    "building a log of {entries} entries in {} ...",
                    tmp.display()
                );
            }
            let report = bench::proofs(&tmp, (*entries).max(1), (*samples).max(1));
            let _ = std::fs::remove_dir_all(&tmp);
            let report = report.map_err(|e| anyhow!(e))?;
            if *json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(())
        }
        Command::Bench(BenchCmd::Raw {
            state_dir,
            key_label,
            threads,
            seconds,
        }) => bench_raw(state_dir, key_label, *threads, *seconds),
    }
}

/// What to do about a refusal, for the reasons where the next step is clear.
fn next_step(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "forbidden" => {
            "run arictl as root, as a member of the admin socket's group (admin_socket.group, `ari-admin` in a package install), or as a uid in admin_socket.allow_uids"
        }
        "unknown_caller" => {
            "this process is not a provisioned agent: an operator runs `arictl agent provision --agent ID --user U --uid $(id -u) --exe PATH-OF-THIS-PROGRAM`"
        }
        "agent_frozen" => "an operator can serve it again with `arictl agent unfreeze ID`",
        "agent_not_found" => "`arictl agent list` shows the agents",
        "voucher_not_found" => "`arictl voucher list` shows the vouchers",
        "decision_not_found" => "`arictl payment list` shows the decisions",
        "busy"
        | "backend_unavailable"
        | "storage_error"
        | "shutting_down"
        | "not_yet_checkpointed" => {
            "this is temporary: retry shortly; if it persists, `arictl status` shows the backend and queues"
        }
        "report_overdue" => "report the earlier payment's result first (`arictl payment report`)",
        _ => return None,
    })
}

fn main() {
    // `arictl generate-assets --out DIR`: man pages and completions, for packaging.
    ari::cli_assets::generate_if_requested(<Cli as clap::CommandFactory>::command, "1");
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("arictl: {e:#}");
        let code = match e.downcast_ref::<ClientError>() {
            Some(ClientError::Remote(r)) => {
                if let Some(step) = next_step(&r.reason) {
                    eprintln!("hint: {step}");
                }
                2
            }
            _ => 1,
        };
        std::process::exit(code);
    }
}
