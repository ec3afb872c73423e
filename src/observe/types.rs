//! Small shared types of the observation core.

/// A topic group: an exact topic, a template, or `__other__`. Stable for the lifetime of
/// the `TopicGroups` table that issued it (ids of evicted groups are not reused while
/// anything may still refer to them; see `topics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u32);

/// What kind of group a `GroupId` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupKind {
    Exact,
    Template,
    Other,
}

/// Request/response exchanges whose latency is measured passively.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exchange {
    /// CONNECT → CONNACK.
    Connect,
    /// PUBLISH QoS 1 → PUBACK.
    PublishQos1,
    /// PUBLISH QoS 2 → PUBREC.
    PubRec,
    /// PUBREC → PUBREL.
    PubRel,
    /// PUBREL → PUBCOMP.
    PubComp,
    /// PUBLISH QoS 2 → PUBCOMP (the whole flow).
    PublishQos2,
    /// SUBSCRIBE → SUBACK.
    Subscribe,
    /// UNSUBSCRIBE → UNSUBACK.
    Unsubscribe,
    /// PINGREQ → PINGRESP.
    Ping,
    /// PUBLISH into the broker → the same message leaving toward a subscriber.
    Fanout,
}

impl Exchange {
    pub const ALL: [Exchange; 10] = [
        Exchange::Connect,
        Exchange::PublishQos1,
        Exchange::PubRec,
        Exchange::PubRel,
        Exchange::PubComp,
        Exchange::PublishQos2,
        Exchange::Subscribe,
        Exchange::Unsubscribe,
        Exchange::Ping,
        Exchange::Fanout,
    ];

    /// Label value used in metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            Exchange::Connect => "connect",
            Exchange::PublishQos1 => "publish_qos1",
            Exchange::PubRec => "pubrec",
            Exchange::PubRel => "pubrel",
            Exchange::PubComp => "pubcomp",
            Exchange::PublishQos2 => "publish_qos2",
            Exchange::Subscribe => "subscribe",
            Exchange::Unsubscribe => "unsubscribe",
            Exchange::Ping => "ping",
            Exchange::Fanout => "fanout",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}
