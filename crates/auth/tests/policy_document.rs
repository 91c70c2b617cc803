//! The worked example of `docs/policy.md` is a valid policy, its test cases pass, and the
//! decisions the document walks through are the engine's.

use tollgate_auth::permissions::{AuthorizerChain, Reason, Request};
use tollgate_auth::policy::PolicyFile;
use tollgate_auth::{Attribute, Principal, Source};
use tollgate_mqtt::QoS;

fn worked_example() -> PolicyFile {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/policy.md");
    let doc = std::fs::read_to_string(path).expect("docs/policy.md");
    let section = &doc[doc
        .find("## A worked example")
        .expect("worked example section")..];
    let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
    let end = start + section[start..].find("```").expect("end of block");
    PolicyFile::parse(&section[start..end], "docs/policy.md").unwrap()
}

#[test]
fn the_worked_example_passes_its_own_tests() {
    let policy = worked_example();
    assert_eq!(policy.tests().len(), 5);
    let report = policy.run_tests();
    assert!(report.is_success(), "{report}");
}

#[test]
fn the_walk_through_is_what_the_engine_decides() {
    let chain = AuthorizerChain::new().with(worked_example());
    let mut device = Principal::anonymous("sn-4711");
    device.roles.push(Attribute::new("device", Source::Connect));
    let device = chain.compile(&device);
    let qos2 = device.check_publish("devices/sn-4711/state/temp", QoS::ExactlyOnce, false);
    assert_eq!(qos2.reason, Reason::QosNotPermitted);

    let mut alice = Principal::anonymous("laptop");
    alice.username = Some("alice".into());
    let alice = chain.compile(&alice);
    assert!(
        alice
            .check_publish("devices/sn-4711/commands/reboot", QoS::AtLeastOnce, false)
            .allowed
    );
    let explanation = alice.explain(&Request::Subscribe {
        filter: "devices/#",
        qos: QoS::AtMostOnce,
        shared: false,
    });
    assert_eq!(explanation.decision.reason, Reason::DefaultDeny);
    assert_eq!(explanation.passed_over.len(), 1, "{explanation}");

    let anonymous = chain.compile(&Principal::anonymous("x"));
    assert!(
        anonymous
            .check_subscribe("public/news", QoS::AtMostOnce, false)
            .allowed
    );
}
