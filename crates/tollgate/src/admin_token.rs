//! `tollgate admin-token`: makes a token for the admin API and its line of the token file.
//!
//! The token (32 random bytes from the operating system, as hex) goes to standard output,
//! once; the file keeps only its SHA-256 (`name:role:hex`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use tollgate_broker::{admin_token_line, AdminRole, AdminTokens};

/// Arguments of `tollgate admin-token`.
#[derive(Args)]
pub struct AdminTokenArgs {
    /// The token's name (shown in logs and audit lines; 1 to 64 letters, digits or - _ . @).
    name: String,
    /// What the token may do: `read` (every GET) or `admin` (everything).
    #[arg(long, value_enum, default_value = "read")]
    role: RoleArg,
    /// Append the token's line to this token file (created, readable by its owner only, if
    /// missing). Without it the line is printed on standard error.
    #[arg(long)]
    file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Read,
    Admin,
}

/// Runs `tollgate admin-token`.
pub fn run(args: AdminTokenArgs) -> ExitCode {
    match make(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tollgate admin-token: {message}");
            ExitCode::from(2)
        }
    }
}

fn make(args: &AdminTokenArgs) -> Result<(), String> {
    let role = match args.role {
        RoleArg::Read => AdminRole::Read,
        RoleArg::Admin => AdminRole::Admin,
    };
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| format!("cannot read random bytes: {e}"))?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let line = admin_token_line(&args.name, role, &token);
    // The line must parse, alone and with what the file holds already.
    AdminTokens::parse(&line).map_err(|(_, message)| message)?;
    match &args.file {
        Some(path) => {
            let existing = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            };
            let mut joined = existing.clone();
            if !joined.is_empty() && !joined.ends_with('\n') {
                joined.push('\n');
            }
            joined.push_str(&line);
            joined.push('\n');
            AdminTokens::parse(&joined)
                .map_err(|(at, message)| format!("{}: line {at}: {message}", path.display()))?;
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let separator = if !existing.is_empty() && !existing.ends_with('\n') {
                "\n"
            } else {
                ""
            };
            writeln!(file, "{separator}{line}")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        None => eprintln!("the token file's line: {line}"),
    }
    println!("{token}");
    Ok(())
}
