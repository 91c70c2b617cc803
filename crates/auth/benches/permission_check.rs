//! The hot-path checks with 10, 1 000 and 10 000 rules.
//!
//! - `literal`: rules with distinct first levels (`tenant<i>/devices/+/state/#`), every tenth a
//!   deny, the one that decides last in the list (the worst case for a scan);
//! - `patterns`: rules for everyone with a placeholder (`sensors/<i>/%c/#`), compiled for one
//!   client, the deciding one last;
//! - `wildcard_first`: rules that all start with `+` (`+/<i>/#`);
//!
//! each checked for a publish that matches, a publish that matches nothing, and subscriptions
//! (a literal filter and one with `+`). `worst_case` is the index's known weak spot: a
//! subscription with `+` where many sibling levels hold deny rules that do not overlap it
//! (`tenant<i>/admin` denied, `+/devices/x` asked): each sibling is visited. `scan` gives the
//! plain ordered scan for comparison, and `compile` the cost of compiling the pattern rules for
//! one principal.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tollgate_auth::permissions::{
    Activity, AuthorizerChain, CompiledPermissions, DefaultBehaviour, Permission, Request,
    StaticRules,
};
use tollgate_auth::Principal;
use tollgate_mqtt::QoS;

const SIZES: [usize; 3] = [10, 1_000, 10_000];

fn chain(rules: Vec<Permission>) -> AuthorizerChain {
    AuthorizerChain::new().with(StaticRules::new("bench", rules, DefaultBehaviour::Deny))
}

fn literal_rules(n: usize) -> Vec<Permission> {
    (0..n)
        .map(|i| {
            let filter = format!("tenant{i}/devices/+/state/#");
            if i % 10 == 9 && i + 1 != n {
                Permission::deny(&filter).unwrap()
            } else {
                Permission::allow(&filter).unwrap()
            }
        })
        .collect()
}

fn pattern_rules(n: usize) -> Vec<Permission> {
    (0..n)
        .map(|i| Permission::allow(&format!("sensors/{i}/%c/#")).unwrap())
        .collect()
}

fn wildcard_first_rules(n: usize) -> Vec<Permission> {
    (0..n)
        .map(|i| {
            Permission::allow(&format!("+/{i}/#"))
                .unwrap()
                .for_activity(Activity::All)
        })
        .collect()
}

fn sibling_deny_rules(n: usize) -> Vec<Permission> {
    let mut rules: Vec<Permission> = (0..n - 1)
        .map(|i| Permission::deny(&format!("tenant{i}/admin")).unwrap())
        .collect();
    rules.push(Permission::allow("#").unwrap());
    rules
}

fn principal() -> Principal {
    Principal::anonymous("dev-1")
}

fn checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for n in SIZES {
        let last = n - 1;
        let literal = chain(literal_rules(n)).compile(&principal());
        let patterns = chain(pattern_rules(n)).compile(&principal());
        let wildcard = chain(wildcard_first_rules(n)).compile(&principal());
        let siblings = chain(sibling_deny_rules(n)).compile(&principal());

        let literal_topic = format!("tenant{last}/devices/d1/state/temp");
        let pattern_topic = format!("sensors/{last}/dev-1/temp");
        let wildcard_topic = format!("x/{last}/y");
        let literal_filter = format!("tenant{last}/devices/+/state/#");
        let pattern_filter = format!("sensors/{last}/dev-1/+");

        let cases: [(&str, &CompiledPermissions, Request<'_>); 9] = [
            (
                "literal/publish_match",
                &literal,
                Request::Publish {
                    topic: &literal_topic,
                    qos: QoS::AtLeastOnce,
                    retain: false,
                },
            ),
            (
                "literal/publish_no_match",
                &literal,
                Request::Publish {
                    topic: "elsewhere/devices/d1/state/temp",
                    qos: QoS::AtLeastOnce,
                    retain: false,
                },
            ),
            (
                "literal/subscribe",
                &literal,
                Request::Subscribe {
                    filter: &literal_filter,
                    qos: QoS::AtLeastOnce,
                    shared: false,
                },
            ),
            (
                "literal/subscribe_wildcard",
                &literal,
                Request::Subscribe {
                    filter: "+/devices/d1/state/temp",
                    qos: QoS::AtLeastOnce,
                    shared: false,
                },
            ),
            (
                "patterns/publish_match",
                &patterns,
                Request::Publish {
                    topic: &pattern_topic,
                    qos: QoS::AtMostOnce,
                    retain: false,
                },
            ),
            (
                "patterns/subscribe",
                &patterns,
                Request::Subscribe {
                    filter: &pattern_filter,
                    qos: QoS::AtMostOnce,
                    shared: false,
                },
            ),
            (
                "wildcard_first/publish_match",
                &wildcard,
                Request::Publish {
                    topic: &wildcard_topic,
                    qos: QoS::AtMostOnce,
                    retain: false,
                },
            ),
            (
                "wildcard_first/subscribe",
                &wildcard,
                Request::Subscribe {
                    filter: &wildcard_topic,
                    qos: QoS::AtMostOnce,
                    shared: false,
                },
            ),
            (
                "worst_case/subscribe_wildcard_over_sibling_denies",
                &siblings,
                Request::Subscribe {
                    filter: "+/devices/x",
                    qos: QoS::AtMostOnce,
                    shared: false,
                },
            ),
        ];
        for (name, permissions, request) in cases {
            assert_eq!(
                permissions.check(&request),
                permissions.check_by_scan(&request),
                "{name} {n}"
            );
            group.bench_with_input(BenchmarkId::new(name, n), &request, |b, request| {
                b.iter(|| permissions.check(black_box(request)))
            });
        }
        let scan_request = Request::Publish {
            topic: &literal_topic,
            qos: QoS::AtLeastOnce,
            retain: false,
        };
        group.bench_with_input(
            BenchmarkId::new("scan/literal/publish_match", n),
            &scan_request,
            |b, request| b.iter(|| literal.check_by_scan(black_box(request))),
        );
    }
    group.finish();
}

fn compiling(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for n in SIZES {
        let chain = chain(pattern_rules(n));
        group.bench_with_input(BenchmarkId::new("patterns", n), &chain, |b, chain| {
            b.iter(|| chain.compile(black_box(&principal())))
        });
    }
    group.finish();
}

criterion_group!(benches, checks, compiling);
criterion_main!(benches);
