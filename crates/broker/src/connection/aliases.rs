//! The topic aliases of one connection (MQTT 5), both ways, with the bytes they hold.

use std::collections::HashMap;

/// The topic aliases of one connection (MQTT 5).
#[derive(Default)]
pub(super) struct TopicAliases {
    /// Aliases the client set for topics it publishes to.
    pub(super) incoming: HashMap<u16, String>,
    /// Aliases the broker set for topics it delivers.
    pub(super) outgoing: HashMap<String, u16>,
    /// Bytes both maps hold, kept as they change (the connection's footprint is asked after
    /// every wake-up: summing thousands of aliases each time would cost as much).
    pub(super) bytes: usize,
}

/// What one alias entry is counted as: its topic and the map slot around it.
fn alias_bytes(topic: &str) -> usize {
    topic.len() + 32
}

impl TopicAliases {
    /// Sets the client's alias `alias` to `topic`.
    pub(super) fn set_incoming(&mut self, alias: u16, topic: String) {
        self.bytes += alias_bytes(&topic);
        if let Some(old) = self.incoming.insert(alias, topic) {
            self.bytes -= alias_bytes(&old);
        }
    }

    /// Records the broker's alias `alias` for `topic`.
    pub(super) fn set_outgoing(&mut self, topic: String, alias: u16) {
        let bytes = alias_bytes(&topic);
        if self.outgoing.insert(topic, alias).is_none() {
            self.bytes += bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_aliases_count_their_bytes_as_they_are_set_and_replaced() {
        let mut aliases = TopicAliases::default();
        aliases.set_incoming(1, "a".repeat(100));
        aliases.set_incoming(1, "b".repeat(10));
        aliases.set_incoming(2, "c".repeat(20));
        assert_eq!(
            aliases.bytes,
            alias_bytes(&"b".repeat(10)) + alias_bytes(&"c".repeat(20))
        );
        aliases.set_outgoing("t".repeat(50), 1);
        aliases.set_outgoing("t".repeat(50), 1);
        assert_eq!(
            aliases.bytes,
            alias_bytes(&"b".repeat(10))
                + alias_bytes(&"c".repeat(20))
                + alias_bytes(&"t".repeat(50))
        );
    }
}
