//! Stub: connections, clients, latency, fan-out, wire events (tracker work).
