//! `tollgate passwd`: manages a password file as `mosquitto_passwd` does, writing argon2id,
//! or with `--scram` SCRAM keys (for the MQTT 5 methods `SCRAM-SHA-256` / `SCRAM-SHA-512`;
//! such a line checks a plain password too).
//!
//!     tollgate passwd [-c] FILE USER            prompt for the password (twice, no echo)
//!     tollgate passwd [-c] -b FILE USER PASS    batch mode: password on the command line
//!     tollgate passwd [-c] --stdin FILE USER    read the password from standard input
//!     tollgate passwd --scram [sha-256|sha-512] [--iterations N] FILE USER
//!     tollgate passwd -D FILE USER              delete the user

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tollgate_auth::password_file::PasswordFileEditor;
use tollgate_auth::scram::Mechanism;

/// Arguments of `tollgate passwd`.
#[derive(Args, Debug)]
pub struct PasswdArgs {
    /// Create a new file, overwriting any existing one.
    #[arg(short = 'c', conflicts_with = "delete")]
    create: bool,
    /// Batch mode: take the password from the command line (visible to other users of the
    /// machine through the process list; prefer --stdin).
    #[arg(short = 'b', conflicts_with_all = ["delete", "stdin"])]
    batch: bool,
    /// Delete the user.
    #[arg(short = 'D')]
    delete: bool,
    /// Read the password from standard input (one line).
    #[arg(long, conflicts_with = "delete")]
    stdin: bool,
    /// Write SCRAM keys instead of an argon2id hash: `sha-256` (the default when the flag is
    /// given alone) or `sha-512`.
    #[arg(long, value_name = "HASH", num_args = 0..=1, default_missing_value = "sha-256",
          value_parser = ["sha-256", "sha-512"], conflicts_with = "delete")]
    scram: Option<String>,
    /// PBKDF2 iterations of the SCRAM keys (with --scram).
    #[arg(long, default_value_t = tollgate_auth::scram::MIN_ITERATIONS, requires = "scram")]
    iterations: u32,
    /// The password file.
    file: PathBuf,
    /// The user name.
    user: String,
    /// The password (with -b only).
    password: Option<String>,
}

/// Runs `tollgate passwd`.
pub fn run(args: PasswdArgs) -> ExitCode {
    match execute(args) {
        Ok(message) => {
            if !message.is_empty() {
                eprintln!("{message}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate passwd: {e}");
            ExitCode::from(1)
        }
    }
}

fn execute(args: PasswdArgs) -> Result<String, String> {
    if args.password.is_some() && !args.batch {
        return Err("a password on the command line needs -b".into());
    }
    let mut editor =
        PasswordFileEditor::open(&args.file, args.create).map_err(|e| e.to_string())?;
    if args.delete {
        if !editor.delete(&args.user) {
            return Err(format!(
                "user `{}` not found in {}",
                args.user,
                args.file.display()
            ));
        }
        editor.save().map_err(|e| e.to_string())?;
        return Ok(format!("deleted user `{}`", args.user));
    }
    let password = if args.batch {
        args.password.ok_or("-b needs a password")?
    } else if args.stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let second = rpassword::prompt_password("Reenter password: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != second {
            return Err("passwords do not match".into());
        }
        first
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    let added = match args.scram.as_deref() {
        None => editor.set(&args.user, password.as_bytes())?,
        Some(hash) => {
            let mechanism = if hash == "sha-512" {
                Mechanism::Sha512
            } else {
                Mechanism::Sha256
            };
            editor.set_scram(&args.user, &password, mechanism, args.iterations)?
        }
    };
    editor.save().map_err(|e| e.to_string())?;
    Ok(if added {
        String::new()
    } else {
        format!("updated user `{}`", args.user)
    })
}
