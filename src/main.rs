//! `quarry`: the command line. Parses arguments, opens the workspace, calls the library, and
//! turns errors into messages and exit codes (1 = error, 3 = the validator refused).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUARRY_LOG")
                .unwrap_or_else(|_| "quarry=info".into()),
        )
        .with_writer(std::io::stderr);
    // Logs go to stderr: as text for people, or one JSON object per line for collectors.
    match std::env::var("QUARRY_LOG_FORMAT").unwrap_or_default().as_str() {
        "" | "text" => logs.init(),
        "json" => logs.json().flatten_event(true).init(),
        other => {
            eprintln!("error: QUARRY_LOG_FORMAT={other:?} is not a log format; set it to text (the default) or json");
            return ExitCode::FAILURE;
        }
    }
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each cause once: most of Quarry's errors already name their source.
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    message
}
