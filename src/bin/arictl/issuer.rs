//! `arictl issuer`: the keys of external voucher issuers the daemon trusts (operator, admin
//! socket).

use crate::cli::{Cli, CounterpartyCmd, IssuerCmd};
use crate::file::read_input;
use crate::print_json;
use crate::rpc::call;
use anyhow::{Context, Result};
use ari::protocol::call;
use ari::protocol::counterparty::{
    CounterpartyListParams, CounterpartyParams, CounterpartyRef, CounterpartyRole,
};
use ari::protocol::daemon::NoParams;
use ari::protocol::voucher::{IssuerParams, NameParam};

/// Runs one `arictl merchant` or `arictl provider` command.
pub(crate) fn counterparty(cli: &Cli, role: CounterpartyRole, cmd: &CounterpartyCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        CounterpartyCmd::Add { name, jwk } => {
            let jwk = serde_json::from_str(&read_input(jwk)?)
                .with_context(|| format!("{} is not a public P-256 JWK", jwk.display()))?;
            let params = CounterpartyParams {
                role,
                name: name.clone(),
                jwk,
            };
            let added = call::<call::AdminCounterpartyAdd>(admin, &params)?;
            println!(
                "{} {}: registered (kid {})",
                role.as_str(),
                added.name,
                added.kid
            );
            Ok(())
        }
        CounterpartyCmd::List => print_json(&call::<call::AdminCounterpartyList>(
            admin,
            &CounterpartyListParams { role: Some(role) },
        )?),
        CounterpartyCmd::Remove { name } => {
            let params = CounterpartyRef {
                role,
                name: name.clone(),
            };
            call::<call::AdminCounterpartyRemove>(admin, &params)?;
            println!("{} {name}: removed", role.as_str());
            Ok(())
        }
    }
}

/// Runs one `arictl issuer` command.
pub(crate) fn run(cli: &Cli, cmd: &IssuerCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        IssuerCmd::Add { name, jwk } => {
            let jwk = serde_json::from_str(&read_input(jwk)?)
                .with_context(|| format!("{} is not a public P-256 JWK", jwk.display()))?;
            let params = IssuerParams {
                name: name.clone(),
                jwk,
            };
            let added = call::<call::AdminIssuerAdd>(admin, &params)?;
            println!("issuer {}: trusted (kid {})", added.name, added.kid);
            Ok(())
        }
        IssuerCmd::List => print_json(&call::<call::AdminIssuerList>(admin, &NoParams {})?),
        IssuerCmd::Remove { name } => {
            let params = NameParam { name: name.clone() };
            call::<call::AdminIssuerRemove>(admin, &params)?;
            println!("issuer {name}: removed");
            Ok(())
        }
    }
}
