//! Every placeholder end to end (policy file → compiled permissions → check), and the cases
//! where a value must not widen access.

use std::sync::Arc;

use tollgate_auth::permissions::{AuthorizerChain, CompiledPermissions};
use tollgate_auth::policy::PolicyFile;
use tollgate_auth::{Attribute, CertificateInfo, Principal, Source};
use tollgate_mqtt::QoS;

const POLICY: &str = r#"
[[patterns]]
filter = "c/%c/#"
[[patterns]]
filter = "u/%u/#"
[[patterns]]
filter = "cid/${client_id}"
[[patterns]]
filter = "user/${username}"
[[patterns]]
filter = "tenant/${claims.tenant}/+/${claims.site.id}"
[[patterns]]
filter = "cert/${cert.cn}"
[[patterns]]
filter = "role/${roles}/#"
[[patterns]]
filter = "%c"
activity = "subscribe"
"#;

fn compiled(principal: &Principal) -> CompiledPermissions {
    AuthorizerChain::new()
        .with(PolicyFile::parse(POLICY, "p.toml").unwrap())
        .compile(principal)
}

fn full() -> Principal {
    Principal {
        username: Some("alice".into()),
        claims: Some(Arc::new(
            serde_json::json!({"tenant": "acme", "site": {"id": 7}}),
        )),
        certificate: Some(Box::new(CertificateInfo {
            common_name: Some("dev.example".into()),
            ..CertificateInfo::default()
        })),
        roles: vec![
            Attribute::new("reader", Source::Claim("roles".into())),
            Attribute::new("writer", Source::Claim("roles".into())),
        ],
        ..Principal::anonymous("dev-1")
    }
}

#[test]
fn each_placeholder_is_substituted() {
    let p = compiled(&full());
    for topic in [
        "c/dev-1/x",
        "u/alice/x",
        "cid/dev-1",
        "user/alice",
        "tenant/acme/a/7",
        "cert/dev.example",
        "role/reader/x",
        "role/writer/y",
    ] {
        assert!(
            p.check_publish(topic, QoS::AtMostOnce, false).allowed,
            "{topic}"
        );
    }
    for topic in [
        "c/dev-2/x",
        "u/bob/x",
        "tenant/other/a/7",
        "role/admin/x",
        "cert/x",
    ] {
        assert!(
            !p.check_publish(topic, QoS::AtMostOnce, false).allowed,
            "{topic}"
        );
    }
}

#[test]
fn missing_values_never_match() {
    let p = compiled(&Principal::anonymous("dev-1"));
    assert!(p.check_publish("c/dev-1/x", QoS::AtMostOnce, false).allowed);
    assert!(!p.check_publish("u/x", QoS::AtMostOnce, false).allowed);
    assert!(!p.check_publish("user/", QoS::AtMostOnce, false).allowed);
    assert!(
        !p.check_publish("tenant/a/b/c", QoS::AtMostOnce, false)
            .allowed
    );
    assert!(!p.check_publish("cert/x", QoS::AtMostOnce, false).allowed);
    assert!(!p.check_publish("role/x", QoS::AtMostOnce, false).allowed);
    // One note per placeholder that could not be used (username twice, claims, cert).
    assert_eq!(compiled(&Principal::anonymous("dev-1")).notes().len(), 4);
}

#[test]
fn wildcards_and_separators_in_values_never_widen() {
    for client_id in ["+", "#", "a/b", "x+y", "", "nul\0"] {
        let p = compiled(&Principal::anonymous(client_id));
        assert!(
            !p.check_publish("c/anything/x", QoS::AtMostOnce, false)
                .allowed,
            "{client_id:?}"
        );
        assert!(
            !p.check_subscribe("c/+/x", QoS::AtMostOnce, false).allowed,
            "{client_id:?}"
        );
        assert!(
            !p.check_publish("c/a/b/x", QoS::AtMostOnce, false).allowed,
            "{client_id:?}"
        );
        assert!(
            !p.check_subscribe("+", QoS::AtMostOnce, false).allowed,
            "{client_id:?}"
        );
    }
    let mut user = Principal::anonymous("c");
    user.username = Some("#".into());
    assert!(
        !compiled(&user)
            .check_subscribe("u/#", QoS::AtMostOnce, false)
            .allowed
    );
    let mut claims = full();
    claims.claims = Some(Arc::new(
        serde_json::json!({"tenant": "+", "site": {"id": "#"}}),
    ));
    assert!(
        !compiled(&claims)
            .check_publish("tenant/x/a/y", QoS::AtMostOnce, false)
            .allowed
    );
    let mut roles = full();
    roles.roles = vec![Attribute::new("a/b", Source::Connect)];
    assert!(
        !compiled(&roles)
            .check_publish("role/a/b/c", QoS::AtMostOnce, false)
            .allowed
    );
}

#[test]
fn a_value_starting_with_dollar_does_not_reach_dollar_topics() {
    let p = compiled(&Principal::anonymous("$SYS"));
    assert!(!p.check_subscribe("$SYS", QoS::AtMostOnce, false).allowed);
    assert!(p.check_publish("c/$SYS/x", QoS::AtMostOnce, false).allowed);
}

#[test]
fn a_deny_with_an_unusable_value_denies_more_not_less() {
    let policy = r#"
[[patterns]]
filter = "data/%u/private"
effect = "deny"
[[patterns]]
filter = "data/#"
"#;
    let chain = AuthorizerChain::new().with(PolicyFile::parse(policy, "p.toml").unwrap());
    let mut alice = Principal::anonymous("c");
    alice.username = Some("alice".into());
    let p = chain.compile(&alice);
    assert!(
        !p.check_publish("data/alice/private", QoS::AtMostOnce, false)
            .allowed
    );
    assert!(
        p.check_publish("data/bob/private", QoS::AtMostOnce, false)
            .allowed
    );
    // Without a user name the deny covers all of `data/`.
    let p = chain.compile(&Principal::anonymous("c"));
    assert!(
        !p.check_publish("data/bob/private", QoS::AtMostOnce, false)
            .allowed
    );
    assert_eq!(p.rule(0).unwrap().filter.as_ref(), "data/#");
}
