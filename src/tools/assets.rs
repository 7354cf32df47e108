//! Man pages and shell completions, generated from the binaries' clap definitions so they can
//! never disagree with `--help`. The Debian package ships them (see `.ci/package`).
//!
//! Each binary answers `<bin> generate-assets --out DIR` before its normal argument parsing, so
//! the command appears in no help text, man page or completion: it is for packaging only.
//! [`generate`] writes, under `DIR`:
//!
//! - `man/<bin>.<section>` and one page per subcommand, recursively
//!   (`man/arictl-agent.1`, `man/arictl-agent-provision.1`, ...);
//! - `completions/<bin>.bash`, `completions/_<bin>` (zsh) and `completions/<bin>.fish`.

use clap::{Arg, Command, value_parser};
use clap_complete::Shell;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// The hidden subcommand's name.
pub const SUBCOMMAND: &str = "generate-assets";

/// The output directory when the command line is `<bin> generate-assets --out DIR`, `None` for
/// any other command line. A malformed `generate-assets` command line is reported by clap and
/// ends the process.
pub fn requested<I, T>(args: I) -> Option<PathBuf>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if args.get(1).is_none_or(|a| a != SUBCOMMAND) {
        return None;
    }
    let bin = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    let matches = Command::new("ari")
        .bin_name(bin)
        .subcommand(
            Command::new(SUBCOMMAND)
                .about("Write man pages and shell completions (for packaging)")
                .arg(
                    Arg::new("out")
                        .long("out")
                        .value_name("DIR")
                        .required(true)
                        .value_parser(value_parser!(PathBuf)),
                ),
        )
        .get_matches_from(args);
    matches
        .subcommand_matches(SUBCOMMAND)
        .and_then(|m| m.get_one::<PathBuf>("out"))
        .cloned()
}

/// Writes the man pages (in `section`: 1 for commands, 8 for daemons) and the bash, zsh and
/// fish completions of `cmd` under `out`, and returns the files written.
pub fn generate(cmd: Command, section: &str, out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();

    let man_dir = out.join("man");
    std::fs::create_dir_all(&man_dir)?;
    let mut man_cmd = cmd.clone().disable_help_subcommand(true);
    man_cmd.build();
    write_man_pages(man_cmd, section, &man_dir, &mut written)?;

    let completions_dir = out.join("completions");
    std::fs::create_dir_all(&completions_dir)?;
    let mut cmd = cmd;
    let name = cmd.get_name().to_owned();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            &name,
            &completions_dir,
        )?);
    }
    Ok(written)
}

/// One page for `cmd`, then one for each visible subcommand, recursively. `cmd` must be built,
/// so subcommands carry their display names (`arictl-agent-provision`).
fn write_man_pages(
    cmd: Command,
    section: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub.clone(), section, dir, written)?;
    }
    let page = clap_mangen::Man::new(cmd)
        .section(section)
        .manual("ARI signer");
    written.push(page.generate_to(dir)?);
    Ok(())
}

/// For a binary's `main`: if the command line asks for the assets, writes them, prints the files
/// written and exits; otherwise returns and the binary parses its arguments as usual.
pub fn generate_if_requested(cmd: impl FnOnce() -> Command, section: &str) {
    let Some(out) = requested(std::env::args_os()) else {
        return;
    };
    let cmd = cmd();
    let name = cmd.get_name().to_owned();
    match generate(cmd, section, &out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{name}: cannot write to {}: {e}", out.display());
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Command {
        Command::new("tool")
            .version("1.0")
            .about("A tool")
            .subcommand(
                Command::new("agent")
                    .about("Agents")
                    .subcommand(Command::new("provision").about("Provision one")),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn only_the_exact_command_line_asks_for_assets() {
        assert_eq!(
            requested(["tool", "generate-assets", "--out", "x"]),
            Some(PathBuf::from("x"))
        );
        assert_eq!(
            requested(["/usr/bin/tool", "generate-assets", "--out=y"]),
            Some(PathBuf::from("y"))
        );
        assert_eq!(requested(["tool"]), None);
        assert_eq!(requested(["tool", "status", "generate-assets"]), None);
    }

    #[test]
    fn writes_a_page_per_visible_subcommand_and_three_completions() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(sample(), "8", dir.path()).unwrap();
        let mut names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "completions/_tool",
                "completions/tool.bash",
                "completions/tool.fish",
                "man/tool-agent-provision.8",
                "man/tool-agent.8",
                "man/tool.8",
            ]
        );
        let page = std::fs::read_to_string(dir.path().join("man/tool-agent-provision.8")).unwrap();
        assert!(page.contains(".TH tool-agent-provision 8"), "{page}");
    }
}
