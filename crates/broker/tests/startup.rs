//! Why a broker does not start is an enum the embedder can match: every configuration problem
//! at once, or the listener whose socket could not be bound.

mod common;

use common::*;
use tollgate_broker::{Server, StartError};

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
    match Server::start(config)
        .await
        .err()
        .expect("the file is wrong")
    {
        StartError::Config(problems) => {
            let text = problems.to_string();
            assert!(text.contains("missing"), "{text}");
            assert!(text.contains("max_packet_size"), "{text}");
        }
        other => panic!("expected configuration problems, got {other}"),
    }
}
