//! The `tollgate` command as an operator runs it: `check`, `check --tests`, `check-config`,
//! `passwd`, `serve` reading its configuration file again on SIGHUP, and `ctl` against a
//! running broker's admin API.

use std::path::PathBuf;
use std::process::{Command, Output};

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("tollgate-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const POLICY: &str = r#"
default = "deny"

[roles.device]
permissions = [{ filter = "devices/%c/#", activity = "publish", qos = [0, 1] }]

[users.alice]
roles = ["device"]

[[test]]
name = "alice's device publishes its state"
client_id = "d1"
username = "alice"
action = "publish"
topic = "devices/d1/state"
qos = 1
expect = "allow"

[[test]]
name = "but not another device's"
client_id = "d1"
username = "alice"
action = "publish"
topic = "devices/d2/state"
expect = "allow"
"#;

fn config(dir: &Dir, policy: &str) -> String {
    let policy = dir.write("policy.toml", policy);
    dir.write("tollgate.toml", &format!("[[listener]]\nbind = \"127.0.0.1:0\"\n\n[[authorizer]]\nname = \"fleet\"\npolicy_file = {{ path = \"{policy}\" }}\n"))
}

#[test]
fn check_explains_an_allowed_publish_and_names_the_rule_and_its_origin() {
    let dir = Dir::new("allow");
    let cfg = config(&dir, POLICY);
    let out = tollgate(&[
        "check",
        "--config",
        &cfg,
        "--client-id",
        "d1",
        "--username",
        "alice",
        "publish",
        "devices/d1/state",
        "--qos",
        "1",
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("publish `devices/d1/state` QoS 1: ALLOWED"),
        "{text}"
    );
    assert!(
        text.contains("policy.toml:5")
            && text.contains("role `device`")
            && text.contains("via `fleet`"),
        "{text}"
    );
}

#[test]
fn check_exits_1_for_a_denial_and_says_why() {
    let dir = Dir::new("deny");
    let cfg = config(&dir, POLICY);
    let out = tollgate(&[
        "check",
        "--config",
        &cfg,
        "--client-id",
        "d1",
        "--username",
        "alice",
        "publish",
        "devices/d1/state",
        "--qos",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("DENIED"), "{}", stdout(&out));
}

#[test]
fn check_refuses_as_the_broker_does_revoked_principals_and_client_ids_off_pattern() {
    let dir = Dir::new("admission");
    let policy = dir.write("policy.toml", POLICY);
    let revoked = dir.write("revoked.txt", "user mallory\n");
    let cfg = dir.write(
        "tollgate.toml",
        &format!(
            "[[listener]]\nbind = \"127.0.0.1:0\"\nclient_id_patterns = [\"%u-*\"]\n\n\
             [revocation]\npath = \"{revoked}\"\n\n\
             [[authorizer]]\nname = \"fleet\"\npolicy_file = {{ path = \"{policy}\" }}\n"
        ),
    );
    let check = |client_id: &str, username: &str| {
        tollgate(&[
            "check",
            "--config",
            &cfg,
            "--client-id",
            client_id,
            "--username",
            username,
            "publish",
            "devices/x/state",
        ])
    };
    let out = check("mallory-1", "mallory");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("user mallory revoked"),
        "{}",
        stdout(&out)
    );
    let out = check("d1", "alice");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("client_id_patterns"),
        "{}",
        stdout(&out)
    );
    let out = check("alice-1", "alice");
    assert!(
        stdout(&out).contains("DENIED"),
        "admitted, then checked: {}",
        stdout(&out)
    );
}

#[test]
fn check_tests_runs_the_policy_cases_and_fails_on_a_wrong_expectation() {
    let dir = Dir::new("tests");
    let cfg = config(&dir, POLICY);
    let out = tollgate(&["check", "--config", &cfg, "--tests"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the second case expects the wrong thing"
    );
    let text = stdout(&out);
    assert!(
        text.contains("but not another device's") && text.contains("1 passed, 1 failed"),
        "{text}"
    );
    let fixed = config(
        &dir,
        &POLICY.replace(
            "topic = \"devices/d2/state\"\nexpect = \"allow\"",
            "topic = \"devices/d2/state\"\nexpect = \"deny\"",
        ),
    );
    let out = tollgate(&["check", "--config", &fixed, "--tests"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("2 passed, 0 failed"));
}

#[test]
fn check_config_reports_file_line_and_key() {
    let dir = Dir::new("config");
    let cfg = dir.write(
        "bad.toml",
        "[[listener]]\nbind = \"127.0.0.1:1883\"\nallow_anonymus = true\n",
    );
    let out = tollgate(&["check-config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3: key `allow_anonymus`"), "{err}");
}

#[test]
fn check_config_refuses_a_time_the_clock_cannot_hold() {
    let dir = Dir::new("config-time");
    let cfg = dir.write(
        "huge.toml",
        "sys_interval = 9223372036854775807\n[[listener]]\nbind = \"127.0.0.1:1883\"\n",
    );
    let out = tollgate(&["check-config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("huge.toml:1"), "{err}");
    assert!(err.contains("more than ten years"), "{err}");
}

#[test]
fn passwd_creates_updates_and_deletes_users() {
    let dir = Dir::new("passwd");
    let file = dir.0.join("passwd").to_string_lossy().into_owned();
    assert!(tollgate(&["passwd", "-c", "-b", &file, "alice", "one"])
        .status
        .success());
    assert!(tollgate(&["passwd", "-b", &file, "bob", "two"])
        .status
        .success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("alice:$argon2id$"))
            && text.lines().any(|l| l.starts_with("bob:$argon2id$")),
        "{text}"
    );
    assert!(
        !text.contains("one") && !text.contains("two"),
        "no plain-text password"
    );
    assert!(tollgate(&["passwd", "-D", &file, "alice"]).status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("alice:") && text.contains("bob:"));
    assert!(
        !tollgate(&["passwd", "-D", &file, "alice"]).status.success(),
        "deleting a missing user fails"
    );
}

#[test]
fn passwd_scram_writes_keys_of_the_chosen_hash_and_never_the_password() {
    let dir = Dir::new("passwd-scram");
    let file = dir.0.join("passwd").to_string_lossy().into_owned();
    assert!(
        tollgate(&["passwd", "-c", "--scram", "-b", &file, "dev1", "pencil"])
            .status
            .success()
    );
    let out = tollgate(&[
        "passwd",
        "--scram",
        "sha-512",
        "--iterations",
        "8192",
        "-b",
        &file,
        "dev2",
        "pencil",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = |user: &str| {
        let prefix = format!("{user}:");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap()
            .to_owned()
    };
    assert!(line("dev1").starts_with("SCRAM-SHA-256$4096:"), "{text}");
    assert!(line("dev2").starts_with("SCRAM-SHA-512$8192:"), "{text}");
    assert!(!text.contains("pencil"), "no plain-text password");
    let keys = tollgate_auth::scram::ScramKeys::parse(&line("dev2")).unwrap();
    assert!(keys.verify_password(b"pencil"));
    let too_few = tollgate(&[
        "passwd",
        "--scram",
        "--iterations",
        "100",
        "-b",
        &file,
        "dev3",
        "x",
    ]);
    assert!(!too_few.status.success());
    assert!(String::from_utf8_lossy(&too_few.stderr).contains("iteration count"));
}

fn hs256(claims: serde_json::Value, key: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

#[test]
fn check_with_a_token_authenticates_it_and_checks_the_principal_it_gives() {
    let dir = Dir::new("token");
    let cfg = dir.write(
        "tollgate.toml",
        r#"
[[listener]]
bind = "127.0.0.1:0"

[[authenticator]]
name = "auth0"
[authenticator.jwt]
algorithms = ["HS256"]
secret = "device-secret"
username_marker = "JWT"

[[authorizer]]
name = "token"
claims = {}
"#,
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = hs256(
        serde_json::json!({"sub": "thermostat-4", "exp": exp, "topics": ["home/temp"]}),
        "device-secret",
    );
    let token_file = dir.write("token.jwt", &format!("{token}\n"));
    let args = |topic: &'static str, token: String| {
        let cfg = cfg.clone();
        move || {
            tollgate(&[
                "check",
                "--config",
                &cfg,
                "--username",
                "JWT",
                "--token",
                &token,
                "publish",
                topic,
            ])
        }
    };
    let out = args("home/temp", format!("@{token_file}"))();
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("allowed by auth0 as thermostat-4"), "{text}");
    assert!(text.contains("claim `topics`"), "{text}");

    let out = args("home/door", token.clone())();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    let forged = hs256(
        serde_json::json!({"sub": "thermostat-4", "exp": exp, "topics": ["#"]}),
        "guess",
    );
    let out = args("home/door", forged)();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("refused by auth0"),
        "{}",
        stdout(&out)
    );
}

/// A running `tollgate serve`, its log lines as they come, killed when dropped.
struct Serving {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Serving {
    fn start(config: &str) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(["serve", "--config", config])
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Serving { child, lines }
    }

    /// The first log line (from now on) containing `text`; fails after 20 s without one.
    fn line_with(&self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(20)) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {text:?}: {e}"),
            }
        }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CONNACK return code an anonymous MQTT 3.1.1 CONNECT gets at `address`.
fn anonymous_connack(address: &str) -> u8 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c")
        .unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).expect("a CONNACK");
    assert_eq!(connack[..2], [0x20, 0x02]);
    connack[3]
}

#[test]
fn serve_reads_its_configuration_file_again_on_sighup() {
    let dir = Dir::new("sighup");
    let open = "[[listener]]\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n";
    let path = dir.write("tollgate.toml", open);
    let serving = Serving::start(&path);
    let listening = serving.line_with("listening");
    let address = listening
        .split_whitespace()
        .find_map(|w| w.strip_prefix("address="))
        .expect("the address is logged")
        .to_owned();
    assert_eq!(anonymous_connack(&address), 0);

    dir.write("tollgate.toml", &open.replace("true", "false"));
    serving.hangup();
    serving.line_with("configuration reloaded");
    assert_eq!(anonymous_connack(&address), 5, "not authorized");

    // A file with a problem changes nothing, and the log names its line and key.
    dir.write(
        "tollgate.toml",
        "[[listener]]\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\nauthenticators = [\"nobody\"]\n",
    );
    serving.hangup();
    let refused = serving.line_with("configuration not applied");
    assert!(
        refused.contains("tollgate.toml:4: key `listener[0].authenticators`"),
        "{refused}"
    );
    assert_eq!(anonymous_connack(&address), 5, "still not authorized");
}

/// `tollgate ctl` with the token in the environment, against the admin API at `url`.
fn ctl(url: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["ctl", "--url", url])
        .args(args)
        .env("TOLLGATE_ADMIN_TOKEN", token)
        .output()
        .expect("runs")
}

#[test]
fn ctl_lists_explains_bans_and_lifts_against_a_running_broker() {
    let dir = Dir::new("ctl");
    let tokens = dir.0.join("admin.tokens");
    let made = tollgate(&[
        "admin-token",
        "ops",
        "--role",
        "admin",
        "--file",
        tokens.to_str().unwrap(),
    ]);
    assert!(made.status.success());
    let token = stdout(&made).trim().to_owned();
    let config = dir.write(
        "tollgate.toml",
        &format!(
            "[[listener]]\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n\n[admin]\nbind = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
            tokens.display()
        ),
    );
    let serving = Serving::start(&config);
    let address_in = |line: String| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .expect("the address is logged")
            .to_owned()
    };
    let mqtt = address_in(serving.line_with("listening"));
    let url = format!(
        "http://{}",
        address_in(serving.line_with("admin API listening"))
    );

    use std::io::{Read, Write};
    let mut device = std::net::TcpStream::connect(&mqtt).unwrap();
    device
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    device
        .write_all(b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02d1")
        .unwrap();
    let mut connack = [0u8; 4];
    device.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);

    let listed = ctl(&url, &token, &["--json", "clients"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["data"][0]["client_id"], "d1");
    let table = ctl(&url, &token, &["clients"]);
    assert!(stdout(&table).contains("d1"), "{}", stdout(&table));

    let explained = ctl(&url, &token, &["explain", "d1", "publish", "a/b"]);
    assert_eq!(explained.status.code(), Some(0), "{explained:?}");
    let sys = ctl(&url, &token, &["explain", "d1", "publish", "$SYS/x"]);
    assert_eq!(sys.status.code(), Some(1), "denied: exit 1");

    let banned = ctl(&url, &token, &["ban", "client", "d1", "--reason", "test"]);
    assert!(banned.status.success(), "{banned:?}");
    assert!(
        stdout(&banned).contains("banned client d1 (1 disconnected)"),
        "{}",
        stdout(&banned)
    );
    let mut rest = Vec::new();
    assert_eq!(
        device.read_to_end(&mut rest).unwrap(),
        0,
        "closed by the ban"
    );
    assert!(stdout(&ctl(&url, &token, &["bans"])).contains("d1"));
    assert!(ctl(&url, &token, &["unban", "client", "d1"])
        .status
        .success());

    let missing = ctl(&url, &token, &["kick", "nobody"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("404"),
        "{missing:?}"
    );
    let wrong = ctl(&url, "not-the-token", &["clients"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("401"),
        "{wrong:?}"
    );
    let no_token = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["ctl", "--url", &url, "clients"])
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("TOLLGATE_ADMIN_TOKEN"));
}

#[test]
fn check_shows_both_identities_of_a_device_secret_beside_a_user_token() {
    let dir = Dir::new("two-ids");
    let secrets = dir.0.join("devices.secrets").to_string_lossy().into_owned();
    let made = tollgate(&["passwd", "-c", "-b", &secrets, "sensor-7", "device-secret"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let policy = dir.write(
        "policy.toml",
        "default = \"deny\"\n[[patterns]]\nfilter = \"devices/%c/users/%u/#\"\n",
    );
    let cfg = dir.write(
        "tollgate.toml",
        &format!(
            r#"
[[listener]]
bind = "127.0.0.1:0"
client_authenticators = ["devices"]
authenticators = ["users"]

[[authenticator]]
name = "devices"
password_file = {{ path = "{secrets}", key = "client_id" }}

[[authenticator]]
name = "users"
jwt = {{ algorithms = ["HS256"], secret = "user-secret", token_from = "authentication_data", authentication_method = "jwt" }}

[[authorizer]]
name = "policy"
policy_file = {{ path = "{policy}" }}
"#
        ),
    );
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = hs256(
        serde_json::json!({"sub": "alice", "exp": exp}),
        "user-secret",
    );
    let check = |secret: &str, topic: &str| {
        tollgate(&[
            "check",
            "--config",
            &cfg,
            "--client-id",
            "sensor-7",
            "--password",
            secret,
            "--auth-method",
            "jwt",
            "--auth-data",
            &token,
            "publish",
            topic,
        ])
    };
    let out = check("device-secret", "devices/sensor-7/users/alice/state");
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("allowed by users as alice"), "{text}");
    assert!(
        text.contains("client identity: sensor-7 (allowed by authenticator `devices`)"),
        "{text}"
    );
    let out = check("device-secret", "devices/sensor-7/users/bob/state");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = check("wrong", "devices/sensor-7/users/alice/state");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("refused"), "{}", stdout(&out));
}
