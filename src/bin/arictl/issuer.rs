//! `arictl issuer`: the keys of external voucher issuers the daemon trusts (operator, admin
//! socket).

use crate::cli::{Cli, IssuerCmd};
use crate::file::read_input;
use crate::print_json;
use crate::rpc::{call, field};
use anyhow::{Context, Result};
use serde_json::{Value, json};

/// Runs one `arictl issuer` command.
pub(crate) fn run(cli: &Cli, cmd: &IssuerCmd) -> Result<()> {
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
