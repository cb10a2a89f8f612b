//! `imapmig serve`: the web console (admin pages, self-service page, JSON API) over a state
//! file, running the tasks' schedulers too unless `--no-run`. A thin face over `imapmig_web`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use imapmig_core::batch::task::parse_duration;
use imapmig_web::{ensure_admin_token, ServeOptions, TlsFiles};
use tokio_util::sync::CancellationToken;

use crate::batch::{open_state, Failure};

/// `imapmig serve`'s options.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The state file (as for the batch commands). Default: $XDG_STATE_HOME/imapmig/state.sqlite.
    #[arg(long, env = "IMAPMIG_STATE")]
    state: Option<PathBuf>,
    /// The file holding the key that encrypts the stored passwords (as for the batch commands;
    /// default: $IMAPMIG_STATE_KEY).
    #[arg(long)]
    state_key_file: Option<PathBuf>,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The TLS certificate chain (PEM); with --tls-key, the console speaks HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve only: leave the migrating to a separate `imapmig run` on the same state file.
    #[arg(long)]
    no_run: bool,
    /// Offer the open self-service form (/self-service): an employee types the old address
    /// and password; the account must already be in a task and the login must work.
    #[arg(long)]
    open_form: bool,
    /// The console's address as employees reach it, for invitation links
    /// (https://migrate.example.com). Default: the address the admin's browser used.
    #[arg(long)]
    public_url: Option<String>,
    /// How long invitation links stay valid (30m, 12h, 14d).
    #[arg(long, default_value = "14d", value_parser = duration)]
    invitation_ttl: Duration,
    /// Make a new admin token (the old one stops working) and print it once.
    #[arg(long)]
    reset_admin_token: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (30m, 12h, 14d)"))
}

/// Runs the console until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<u8, Failure> {
    let store = Arc::new(open_state(
        args.state.clone(),
        args.state_key_file.as_deref(),
    )?);
    if let Some(token) = ensure_admin_token(&store, args.reset_admin_token)? {
        errln!("imapmig: the console's admin token (shown only now; the state file keeps only a hash):");
        outln!("{}", token.0.expose());
    }
    let options = ServeOptions {
        listen: args.listen,
        tls: match (args.tls_cert, args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        run_schedulers: !args.no_run,
        open_form: args.open_form,
        public_url: args.public_url,
        invitation_ttl: args.invitation_ttl,
    };
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let cancel = CancellationToken::new();
    crate::signals::cancel_on_stop(&cancel, "imapmig: stopping the console...");
    let migrating = if options.run_schedulers {
        "serving and migrating"
    } else {
        "serving only (--no-run)"
    };
    imapmig_web::serve(store, options, cancel, |addr| {
        errln!("imapmig: console on {scheme}://{addr}/ ({migrating}); stop with Ctrl-C");
    })
    .await
    .map_err(|e| match e {
        imapmig_web::WebError::Store(b) => Failure::Batch(b),
        other => Failure::Cli(crate::CliError::Usage(other.to_string())),
    })?;
    Ok(0)
}
