//! Why a broker does not start is an enum the embedder can match: every configuration problem
//! at once, or the listener whose socket could not be bound.

mod common;

use common::*;
use tollgate_broker::{ConfigCause, NamedTable, Server, StartError};

#[tokio::test]
async fn a_listener_whose_address_is_taken_is_a_bind_error_naming_it() {
    let (_first, addr) = start_broker(|_| {}).await;
    let mut config = anonymous_config();
    config.listeners[0].bind = addr;
    config.listeners[0].name = Some("second".into());
    match Server::start(config)
        .await
        .err()
        .expect("the port is taken")
    {
        StartError::Bind {
            listener,
            address,
            source,
        } => {
            assert_eq!(listener, "second");
            assert_eq!(address, addr);
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        other => panic!("expected a bind error, got {other}"),
    }
}

#[tokio::test]
async fn configuration_problems_are_all_given_before_any_socket_is_bound() {
    let mut config = anonymous_config();
    config.listeners[0].authorizers = Some(vec!["missing".into()]);
    config.limits.max_packet_size = 0;
    let listener = config.listeners[0].display_name();
    match Server::start(config)
        .await
        .err()
        .expect("the file is wrong")
    {
        StartError::Config(problems) => {
            let found: Vec<(String, ConfigCause)> = problems
                .iter()
                .map(|p| (p.key.to_string(), p.cause.clone()))
                .collect();
            assert!(
                found.contains(&(
                    "limits.max_packet_size".into(),
                    ConfigCause::BytesBetween {
                        low: 64,
                        high: 268_435_460,
                        value: 0
                    }
                )),
                "{found:?}"
            );
            assert!(
                found.contains(&(
                    "listener[0].authorizers".into(),
                    ConfigCause::NotConfigured {
                        listener: listener.clone(),
                        table: NamedTable::Authorizer,
                        name: "missing".into()
                    }
                )),
                "{found:?}"
            );
            let text = problems.to_string();
            assert!(text.contains("names authorizer `missing`"), "{text}");
        }
        other => panic!("expected configuration problems, got {other}"),
    }
}
