//! `arid`: the ARI signer daemon. Reads its configuration, opens the key store and the state,
//! serves the agent and admin sockets, and stops cleanly on SIGINT or SIGTERM.

use anyhow::{Context, Result, bail};
use ari::config::Config;
use ari::daemon;
use ari::tools::dev;
use clap::{Parser, Subcommand};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "arid",
    version,
    about = "ARI signer daemon: hardware-backed identities and signatures for autonomous agents",
    after_help = "Examples:\n  arid --config /etc/ari/arid.toml\n  arid --check-config /etc/ari/arid.toml\n  arid dev --state-dir ~/.local/state/ari-dev"
)]
struct Args {
    /// Run with this configuration file.
    #[arg(long, value_name = "FILE", conflicts_with = "check_config")]
    config: Option<PathBuf>,
    /// Check a configuration file and exit.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run on a throwaway SoftHSM2 token kept in one directory (created or resumed).
    #[command(
        after_help = "Example:\n  arid dev --state-dir ~/.local/state/ari-dev\n  # then, in another shell, follow the printed instructions\n\nThe directory is created 0700 if it does not exist. A directory, or a file dev mode reads in\nit, that another user owns, that its group or others may write, or that is a symbolic link is\nrefused: dev mode loads the PKCS#11 module its arid.toml names. To let agents running as\nother users reach agent.sock, `chmod 711` the directory."
    )]
    Dev {
        /// The directory holding the token, config, state and sockets: yours alone (created
        /// 0700 if missing), never one another user can write.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// Set the directory up (token, config) and exit without serving.
        #[arg(long)]
        prepare: bool,
        /// The key store: a SoftHSM2 token, or a software TPM (swtpm) started on free
        /// loopback ports with its state in DIR/tpm.
        #[arg(long, value_enum, default_value = "pkcs11")]
        backend: DevBackend,
        /// With --backend tpm: use this TPM instead of starting a simulator, e.g.
        /// `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
        #[arg(long, value_name = "TCTI")]
        tcti: Option<String>,
        /// With --backend tpm: most payments one quote attests (1 turns batching off).
        #[arg(long, value_name = "N", default_value_t = 64)]
        quote_batch: usize,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DevBackend {
    Pkcs11,
    Tpm,
}

/// Whether stderr is connected to the journal (systemd sets `JOURNAL_STREAM` to its device and
/// inode; a child that inherited the variable but not the stream must not log there).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", stat.st_dev, stat.st_ino))
}

/// Starts logging at `level` (unless `RUST_LOG` says otherwise) and returns the function a
/// reload uses to change the level. Under systemd the log goes to the journal with its fields
/// (request id, method, caller) as journal fields; elsewhere to stderr as text.
fn init_logging(level: &str) -> daemon::Control {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, reload};
    let directive = |level: &str| format!("{level},tss_esapi=off");
    let from_env = std::env::var("RUST_LOG").is_ok();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directive(level)));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let journal = stderr_is_journal().then(tracing_journald::layer);
    match journal {
        Some(Ok(layer)) => registry
            .with(layer.with_syslog_identifier("arid".into()))
            .init(),
        other => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                        .with_writer(std::io::stderr),
                )
                .init();
            if let Some(Err(e)) = other {
                tracing::warn!(error = %e, "cannot reach the journal; logging to stderr");
            }
        }
    }
    daemon::Control {
        load_config: None,
        sockets: daemon::Inherited::default(),
        set_log_level: Box::new(move |level| {
            if from_env {
                tracing::warn!("RUST_LOG is set and overrides log.level; the log level stays");
                return Ok(());
            }
            let filter = EnvFilter::try_new(directive(level))?;
            Ok(handle.reload(filter)?)
        }),
    }
}

/// Re-reads the configuration file at `file` on SIGHUP.
fn file_loader(file: PathBuf) -> daemon::ConfigLoader {
    Box::new(move || {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let config = Config::parse(&text, &file)?;
        Ok((config, text))
    })
}

fn runtime(config: &Config) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.io_threads())
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run_config(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let config = Config::parse(&text, path)?;
    let control = daemon::Control {
        load_config: Some(file_loader(path.to_path_buf())),
        // Before any thread exists: taking them edits the environment.
        sockets: daemon::Inherited::take(&config)?,
        ..init_logging(&config.log.level)
    };
    runtime(&config)?.block_on(daemon::run(config, &text, None, control))?;
    Ok(())
}

fn check_config(path: &Path) -> Result<()> {
    let config = Config::load(path)?;
    println!(
        "{}: OK (backend {}, agent socket {}, admin socket {})",
        path.display(),
        match &config.backend {
            ari::config::BackendConfig::Pkcs11(p) => format!("pkcs11, token {:?}", p.token_label),
            ari::config::BackendConfig::Tpm(t) => format!("tpm, {}", t.tcti),
        },
        config.agent_socket.path.display(),
        config.admin_socket.path.display()
    );
    Ok(())
}

fn run_dev_tpm(
    state_dir: &Path,
    prepare: bool,
    tcti: Option<&str>,
    quote_batch: usize,
) -> Result<()> {
    let layout = dev::prepare(state_dir)?;
    let _lock = dev::lock(&layout)?;
    let tpm = match tcti {
        Some(_) => None,
        None => Some(ari::tools::swtpm::Swtpm::start_for_one_client(
            &dev::tpm_state_dir(&layout)?,
        )?),
    };
    let tcti = match (tcti, &tpm) {
        (Some(t), _) => t.to_owned(),
        (None, Some(s)) => s.tcti(),
        (None, None) => bail!("no TPM"),
    };
    let (config, text) = dev::tpm_config(&layout, &tcti, quote_batch)?;
    if prepare {
        println!(
            "{} is ready (software TPM state in {}); start it with: arid dev --backend tpm --state-dir {}",
            layout.dir.display(),
            layout.dir.join("tpm").display(),
            layout.dir.display()
        );
        return Ok(());
    }
    let (reload_layout, reload_tcti) = (layout.clone(), tcti.clone());
    let control = daemon::Control {
        load_config: Some(Box::new(move || {
            Ok(dev::tpm_config(&reload_layout, &reload_tcti, quote_batch)?)
        })),
        ..init_logging(&config.log.level)
    };
    let what = match &tpm {
        Some(_) => format!(
            "software TPM (swtpm) at {tcti}, state in {}",
            layout.dir.join("tpm").display()
        ),
        None => format!("TPM at {tcti}"),
    };
    print!("{}", dev::banner(&layout, false, Some(&what)));
    let served = runtime(&config)?.block_on(daemon::run(config, &text, None, control));
    drop(tpm);
    Ok(served?)
}

fn run_dev(state_dir: &Path, prepare: bool) -> Result<()> {
    dev::check_softhsm()?;
    let layout = dev::prepare(state_dir)?;
    if !dev::env_is_set(&layout) {
        // SoftHSM reads SOFTHSM2_CONF when it is loaded; start again with it set.
        let exe = std::env::current_exe().context("cannot find this program to restart it")?;
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("SOFTHSM2_CONF", &layout.softhsm_conf)
            .exec();
        bail!("cannot restart with SOFTHSM2_CONF set: {err}");
    }
    let _lock = dev::lock(&layout)?;
    let (ctx, config, text, created) = dev::open_token(&layout)?;
    if prepare {
        println!(
            "{} is ready (token {}); start it with: arid dev --state-dir {}",
            layout.dir.display(),
            if created { "created" } else { "reused" },
            layout.dir.display()
        );
        return Ok(());
    }
    let control = daemon::Control {
        load_config: Some(file_loader(layout.config.clone())),
        ..init_logging(&config.log.level)
    };
    print!("{}", dev::banner(&layout, created, None));
    runtime(&config)?.block_on(daemon::run(config, &text, Some(ctx), control))?;
    Ok(())
}

fn main() {
    // `arid generate-assets --out DIR`: man pages (section 8) and completions, for packaging.
    ari::tools::assets::generate_if_requested(<Args as clap::CommandFactory>::command, "8");
    let args = Args::parse();
    let result = match (&args.command, &args.config, &args.check_config) {
        (
            Some(Command::Dev {
                state_dir,
                prepare,
                backend,
                tcti,
                quote_batch,
            }),
            None,
            None,
        ) => match backend {
            DevBackend::Pkcs11 if tcti.is_some() => {
                Err(anyhow::anyhow!("--tcti needs --backend tpm"))
            }
            DevBackend::Pkcs11 => run_dev(state_dir, *prepare),
            DevBackend::Tpm => run_dev_tpm(state_dir, *prepare, tcti.as_deref(), *quote_batch),
        },
        (None, Some(config), None) => run_config(config),
        (None, None, Some(path)) => check_config(path),
        (None, None, None) => Err(anyhow::anyhow!(
            "give --config FILE, --check-config FILE, or `dev --state-dir DIR` (see --help)"
        )),
        _ => Err(anyhow::anyhow!(
            "`dev` takes no --config; its directory holds its own"
        )),
    };
    if let Err(e) = result {
        eprintln!("arid: {e:#}");
        std::process::exit(1);
    }
}
