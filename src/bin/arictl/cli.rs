//! `arictl`'s command line: every command, flag and example, as clap reads them and as the man
//! pages and completions (`generate-assets`) show them. Only definitions: what a command does is
//! in the file of its family.

use ari::client::{DEFAULT_ADMIN_SOCKET, DEFAULT_AGENT_SOCKET};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "arictl",
    version,
    about = "Operate, use and verify the ARI signer daemon (arid)",
    after_help = "Examples:\n  arictl agent provision --agent shop-bot --user alice@example.com --uid 1001 --exe /usr/bin/shop-bot\n  arictl agent list\n  arictl attest --nonce 3f1c9a0e5b7d2468\n  arictl bench attest --clients 16 --seconds 10"
)]
pub(crate) struct Cli {
    /// The admin socket (operators).
    #[arg(long, global = true, env = "ARI_ADMIN_SOCKET", default_value = DEFAULT_ADMIN_SOCKET, value_name = "PATH")]
    pub(crate) admin_socket: PathBuf,
    /// The agent socket (agent runtimes).
    #[arg(long, global = true, env = "ARI_AGENT_SOCKET", default_value = DEFAULT_AGENT_SOCKET, value_name = "PATH")]
    pub(crate) agent_socket: PathBuf,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Register merchants' keys: a payment may be bound to a checkout one of them signed
    /// (operator, admin socket).
    #[command(subcommand)]
    Merchant(CounterpartyCmd),
    /// Register payment providers' keys: a report may carry a receipt one of them signed
    /// (operator, admin socket).
    #[command(subcommand)]
    Provider(CounterpartyCmd),
    /// Export the key set (JWKS) and rotate the daemon's issuer and log keys (operator).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Ask for, follow and report payments (agent side), or confirm and list them (operator).
    #[command(subcommand)]
    Payment(PaymentCmd),
    /// What each agent and user spent: today, this period, lifetime, held; pending
    /// confirmations, overdue reports, denials by reason; then each voucher's balance (operator).
    #[command(
        after_help = "Amounts are in each currency's major unit, times in the local time zone (TZ).\n\nExamples:\n  arictl spending\n  arictl spending --agent shopper\n  arictl spending --user alice@example.com --json"
    )]
    Spending {
        /// Only this agent.
        #[arg(long, conflicts_with = "user")]
        agent: Option<String>,
        /// Only this user's agents.
        #[arg(long)]
        user: Option<String>,
        /// Print the daemon's answer as JSON: minor units and Unix seconds.
        #[arg(long)]
        json: bool,
    },
    /// Follow decisions as they happen (authorized, denied with the reason, held, confirmed,
    /// rejected, frozen, revoked) from the evidence log; carries on across daemon restarts
    /// (operator).
    #[command(
        after_help = "Examples:\n  arictl watch\n  arictl watch --agent shopper\n  arictl watch --user alice@example.com --all\n  arictl watch --from 0 --json   # the whole log, then live, one entry per line"
    )]
    Watch {
        /// Only this agent's decisions.
        #[arg(long, conflicts_with = "user")]
        agent: Option<String>,
        /// Only the decisions of this user's agents.
        #[arg(long)]
        user: Option<String>,
        /// Start at this entry (default: what comes next).
        #[arg(long)]
        from: Option<u64>,
        /// Every entry, not only decisions and the changes that stop spending.
        #[arg(long)]
        all: bool,
        /// One entry per line as the log holds it.
        #[arg(long)]
        json: bool,
    },
    /// Serve the web console on a loopback port: agents, budgets, spending over time, a live
    /// feed, and buttons to confirm, reject, freeze and revoke (operator).
    #[command(
        after_help = "The console speaks to the daemon as the operator running it, through the admin socket. It listens on 127.0.0.1 only and prints a URL with a secret token; open it in a browser on this machine (or through an SSH tunnel with the same port on both ends: ssh -L 8470:127.0.0.1:8470 host).\n\nExamples:\n  arictl console\n  arictl console --port 8470"
    )]
    Console {
        /// The port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8470)]
        port: u16,
    },
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
pub(crate) enum KeysCmd {
    /// Print every public key a verifier needs as one JWK Set: the daemon's issuer and log keys,
    /// agents' keys, the TPM attestation key, external issuers, and rotated or retired keys with
    /// their validity windows (the same document as jwks.json in the publish directory).
    #[command(
        after_help = "Examples:\n  arictl keys export > jwks.json\n  arictl keys export | jq '.keys[] | select(.ari_role == \"log\")'"
    )]
    Export,
    /// Hand the daemon's issuer or log role to a new key made in the key store. The old key
    /// signs nothing from now on and is destroyed; verifiers accept it beside the new one for
    /// the overlap, then the key set lists it as retired.
    #[command(
        after_help = "Examples:\n  arictl keys rotate log\n  arictl keys rotate issuer --overlap 30d"
    )]
    Rotate {
        /// `issuer` or `log`.
        #[arg(value_parser = ["issuer", "log"])]
        role: String,
        /// How long verifiers keep accepting the old key (90s, 15m, 12h, 7d); the configured
        /// keys.rotation_overlap_s by default.
        #[arg(long, value_name = "DURATION")]
        overlap: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum AgentCmd {
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
        /// Provision an existing agent again: a new key and instance replace the old ones, the
        /// old key is destroyed (and listed as retired in the key set); vouchers bound to it
        /// authorize nothing more, so issue new ones.
        #[arg(long)]
        rotate: bool,
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

// Parsed once per run: the size of its largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(crate) enum VoucherCmd {
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
        /// Total of all payments (per period with --period), in minor units.
        #[arg(long)]
        budget: Option<u64>,
        /// Most payments (per period with --period).
        #[arg(long)]
        max_payments: Option<u32>,
        /// Make the budget and the payment count per period: daily, weekly, biweekly, monthly,
        /// quarterly or annually, in UTC (AP2's agent_recurrence.frequency).
        #[arg(long, value_name = "FREQUENCY")]
        period: Option<String>,
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
    /// List vouchers: level, state, budget, spent, held (L2), remaining, payments, expiry.
    #[command(
        after_help = "Amounts are in each currency's major unit, times in the local time zone (TZ); a delegated voucher is marked └.\n\nExamples:\n  arictl voucher list\n  arictl voucher list --agent shop-bot --json"
    )]
    List {
        /// Only this agent's vouchers.
        #[arg(long)]
        agent: Option<String>,
        /// Print JSON (minor units, Unix seconds) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one voucher (by id or digest).
    #[command(after_help = "Example:\n  arictl voucher show 3f1c9a0e5b7d24683f1c9a0e5b7d2468")]
    Show { voucher: String },
    /// Revoke a voucher; no payment is authorized against it afterwards.
    #[command(after_help = "Example:\n  arictl voucher revoke 3f1c9a0e5b7d24683f1c9a0e5b7d2468")]
    Revoke { voucher: String },
    /// Print the newest signed voucher status list (an IETF Status List Token): what the daemon
    /// publishes as status/vouchers, for verifiers working offline.
    #[command(
        after_help = "Examples:\n  arictl voucher status-list > status-list.jwt\n  arictl voucher status-list --json   # with its URL, times and counts\n  arictl verify payment --trust issuer.jwk --status-list status-list.jwt receipt.json"
    )]
    StatusList {
        /// Print the token with its URL, times and counts as JSON instead of the bare token.
        #[arg(long)]
        json: bool,
    },
    /// Register a voucher signed by an external issuer (see `arictl issuer add`).
    #[command(after_help = "Example:\n  arictl voucher import voucher-from-wallet.txt")]
    Import {
        /// File with the root voucher, an SD-JWT with its disclosures (`-` for stdin).
        file: PathBuf,
    },
    /// Delegate part of a voucher you hold to a child agent (agent side, agent socket).
    #[command(
        after_help = "Example (the budget is in yuan, as AP2 writes budgets):\n  echo '{\"constraints\":[{\"type\":\"payment.amount_range\",\"currency\":\"CNY\",\"max\":2000},{\"type\":\"payment.budget\",\"currency\":\"CNY\",\"max\":20.00}],\"a2p2\":{\"autonomy_level\":\"L3\"}}' > child.json\n  arictl voucher delegate --voucher 3f1c9a0e5b7d2468 --agent shop-bot-child --constraints child.json"
    )]
    Delegate {
        /// The voucher you hold: id, digest or compact form.
        #[arg(long)]
        voucher: String,
        /// The child agent.
        #[arg(long)]
        agent: String,
        /// File with the child's limits as its open mandate writes them (`-` for stdin):
        /// `{"constraints": [AP2 constraints], "a2p2": {...}}`; each must narrow yours.
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
pub(crate) enum IssuerCmd {
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
pub(crate) enum CounterpartyCmd {
    /// Register a key under a name (a merchant's name is its merchant id, the payee).
    #[command(
        after_help = "Examples:\n  arictl merchant add shop.example --jwk shop-checkout.jwk\n  arictl provider add psp.example --jwk psp-receipts.jwk"
    )]
    Add {
        /// The name: for a merchant, its merchant id.
        name: String,
        /// File with its public JWK.
        #[arg(long, value_name = "FILE")]
        jwk: PathBuf,
    },
    /// List the registered keys.
    #[command(after_help = "Examples:\n  arictl merchant list\n  arictl provider list")]
    List,
    /// Remove one.
    #[command(
        after_help = "Examples:\n  arictl merchant remove shop.example\n  arictl provider remove psp.example"
    )]
    Remove { name: String },
}

#[derive(Subcommand)]
pub(crate) enum PaymentCmd {
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
        /// The checkout's id, when there is no --checkout.
        #[arg(long, required_unless_present = "checkout")]
        transaction_id: Option<String>,
        /// File with the merchant's signed checkout JWT (`-` for stdin): checked against the
        /// merchant's registered key and the payment; its hash is the transaction id.
        #[arg(long, value_name = "FILE")]
        checkout: Option<PathBuf>,
        /// The verifier the authorization is for.
        #[arg(long)]
        aud: String,
        /// The verifier's nonce.
        #[arg(long)]
        nonce: String,
        /// A fact for conditions, NAME=VALUE (integers, true/false, otherwise text); repeatable.
        #[arg(long = "fact", value_name = "NAME=VALUE")]
        facts: Vec<String>,
        /// Answer at once, without the receipt's `tlog_proof` (which waits for the next
        /// checkpoint, at most `evidence.checkpoint_interval_ms`).
        #[arg(long)]
        no_proof: bool,
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
        after_help = "Examples:\n  arictl payment report 9f2c... --outcome refunded --reference psp-ref-778\n  arictl payment report 9f2c... --outcome succeeded --receipt receipt.jwt --authorization paid.json"
    )]
    Report {
        decision: String,
        /// succeeded, failed or refunded.
        #[arg(long)]
        outcome: String,
        /// The payment rail's reference.
        #[arg(long)]
        reference: Option<String>,
        /// File with the payment provider's signed AP2 payment receipt (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        receipt: Option<PathBuf>,
        /// With --receipt: the authorization it answers, the file `arictl payment authorize`
        /// printed (or the authorization alone).
        #[arg(long, value_name = "FILE", requires = "receipt")]
        authorization: Option<PathBuf>,
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
pub(crate) enum LogCmd {
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
    /// Print the log's verifier keys, one note vkey per line: Ed25519 (for witnesses and Go's
    /// sumdb/note) first when the log has it, then ECDSA.
    #[command(after_help = "Example:\n  arictl log vkey > log.vkeys")]
    Vkey,
    /// Ask a witness to cosign the newest (or a given) checkpoint (C2SP tlog-witness); the
    /// cosignature is checked and added to the served checkpoint. The witnesses listed in the
    /// configuration are asked for every checkpoint without this command.
    #[command(
        after_help = "Example:\n  arictl log witness --witness https://witness.example/ --vkey 'witness.example/w1+1a2b3c4d+BN...'"
    )]
    Witness {
        /// The witness's submission prefix.
        #[arg(long, value_name = "URL")]
        witness: String,
        /// The witness's cosigning key (a note verifier key of type 0x04).
        #[arg(long, value_name = "VKEY")]
        vkey: String,
        /// The checkpoint's tree size (default: the newest).
        #[arg(long)]
        size: Option<u64>,
    },
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

/// Whom a verifier trusts for a log: its key, and the witnesses that must cosign.
#[derive(Args, Debug, Clone)]
pub(crate) struct LogTrust {
    /// The log's verifier key (a note vkey of type 0x01 or 0x02).
    #[arg(long, value_name = "VKEY")]
    pub log_vkey: String,
    /// A witness's cosigning key (a note vkey of type 0x04); repeat for several.
    #[arg(long, value_name = "VKEY")]
    pub witness: Vec<String>,
    /// How many of the witnesses must have cosigned (default: all that are given).
    #[arg(long)]
    pub quorum: Option<usize>,
}

#[derive(Subcommand)]
pub(crate) enum TpmCmd {
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
pub(crate) enum VerifyCmd {
    /// Verify a voucher (or a chain, root first) against trusted issuer keys.
    #[command(
        after_help = "Example:\n  arictl status --issuer-jwk > issuer.jwk\n  arictl verify voucher --trust issuer.jwk voucher.txt"
    )]
    Voucher {
        /// A trusted issuer's public JWK file (repeat for several).
        #[arg(long = "trust", value_name = "FILE", required = true)]
        trust: Vec<PathBuf>,
        /// The issuer's Status List Token (`arictl voucher status-list`, or the published
        /// status/vouchers file): every voucher of the chain that references it must be VALID.
        #[arg(long, value_name = "FILE")]
        status_list: Option<PathBuf>,
        /// Files holding the vouchers of the chain, root first (`-` for stdin).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Verify a payment: a receipt (what `arictl payment authorize` prints: the chain to a
    /// trusted issuer, the holder binding, the authorization's signature, limits, expiry and
    /// attestation), or any AP2 payment mandate chain (`~~`-joined SD-JWTs, whoever made it: its
    /// signatures and bindings at any depth, then AP2's constraint check of the closed mandate
    /// against the last open one).
    #[command(
        after_help = "Examples:\n  arictl verify payment --trust issuer.jwk receipt.json\n  arictl verify payment --trust issuer.jwk --status-list status-list.jwt --at 1795400000 receipt.json\n  arictl verify payment --trust wallet.jwk --aud merchant.example --nonce n-123 mandate.txt"
    )]
    Payment {
        /// A trusted issuer's public JWK file (repeat for several).
        #[arg(long = "trust", value_name = "FILE", required = true)]
        trust: Vec<PathBuf>,
        /// The issuer's Status List Token (`arictl voucher status-list`, or the published
        /// status/vouchers file): every voucher of the chain that references it must be VALID,
        /// and the token must not be past its `exp` at the time checked.
        #[arg(long, value_name = "FILE")]
        status_list: Option<PathBuf>,
        /// Verify as of this Unix time instead of now.
        #[arg(long, value_name = "UNIX")]
        at: Option<i64>,
        /// The log's verifier key (`arictl log vkey`): also check the receipt's `tlog_proof`,
        /// that the authorization is the entry it proves in a checkpoint that key signed.
        #[arg(long, value_name = "VKEY")]
        log_vkey: Option<String>,
        /// With --log-vkey: a witness that must have cosigned that checkpoint (repeatable).
        #[arg(long, value_name = "VKEY", requires = "log_vkey")]
        witness: Vec<String>,
        /// With --witness: how many of them (default: all).
        #[arg(long, requires = "witness")]
        quorum: Option<usize>,
        /// The audience the authorization must name (the merchant checking it).
        #[arg(long)]
        aud: Option<String>,
        /// The nonce the authorization must answer.
        #[arg(long)]
        nonce: Option<String>,
        /// The receipt JSON, or a mandate chain (`-` for stdin).
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
    /// Verify a signed checkpoint with a log verifier key (`arictl log vkey`: Ed25519 or ECDSA)
    /// and, with --witness, that a quorum of witnesses cosigned it (C2SP tlog-cosignature).
    #[command(
        after_help = "Example:\n  curl -s https://pay.example.com/ari/host-7/checkpoint > checkpoint\n  arictl verify checkpoint checkpoint --log-vkey \"$(head -1 log.vkeys)\" --witness \"$W1\" --witness \"$W2\" --quorum 1"
    )]
    Checkpoint {
        /// The checkpoint note (`-` for stdin).
        note: PathBuf,
        #[command(flatten)]
        trust: LogTrust,
    },
    /// Verify a C2SP tlog-proof: the entry's inclusion in a checkpoint signed by the log (and
    /// cosigned by a quorum of witnesses, with --witness). Receipts carry one as `tlog_proof`.
    #[command(
        after_help = "Example:\n  jq -r .tlog_proof receipt.json > entry.tlog-proof\n  arictl verify tlog-proof entry.bytes entry.tlog-proof --log-vkey \"$(head -1 log.vkeys)\""
    )]
    TlogProof {
        /// The entry's exact bytes.
        entry: PathBuf,
        /// The proof (`-` for stdin).
        proof: PathBuf,
        #[command(flatten)]
        trust: LogTrust,
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
pub(crate) enum BenchCmd {
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

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Concurrent client connections; a comma-separated list (1,4,16,64,256) runs one row per
    /// count on the same daemon.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "16",
        value_name = "N[,N...]"
    )]
    pub(crate) clients: Vec<usize>,
    /// Seconds to run each side.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// Print one JSON object per client count, one per line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Use the running dev daemon of this directory instead of a throwaway one.
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// `bench authorize` only: run on a software TPM, with batched quotes and then with one
    /// quote per authorization, each on its own throwaway daemon.
    #[arg(
        long,
        value_enum,
        default_value = "pkcs11",
        conflicts_with = "state_dir"
    )]
    pub(crate) backend: BenchBackend,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BenchBackend {
    Pkcs11,
    Tpm,
}
