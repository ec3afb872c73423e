//! Stub (filled in by the mqtt work).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to broker.
    C2S,
    /// Broker to client.
    S2C,
}
#[derive(Debug, Default)]
pub struct Session {}
