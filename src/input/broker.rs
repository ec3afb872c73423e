//! The broker connection: one tokio task that connects (TCP or TLS, mutual TLS), subscribes
//! to `$SYS` and the EMQX events topic, forwards every message over a bounded channel, and
//! reconnects with exponential backoff and jitter. It never blocks on the consumer: when
//! the channel is full, messages are dropped and counted.
//!
//! The consumer owns the pure state: [`FeedDriver`] applies each [`BrokerMsg`] to a
//! [`BrokerFeed`] (session changes included) and turns "unreachable" reports into
//! `BrokerUnreachable` events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event as MqttEvent, MqttOptions, Packet, QoS,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::broker_config::{BrokerInputConfig, Scheme, Secret, parse_url};
use super::tls;
use crate::broker::BrokerFeed;
use crate::observe::{Event, EventKind, EventSource};

/// The connection's state, as last reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BrokerStatus {
    /// Not yet connected.
    Starting,
    /// CONNACK accepted; `session` counts connections since start (1, 2, ...).
    Connected { broker: String, session: u64 },
    /// The connection failed or dropped. `error` is the client library's message (it never
    /// contains the password); `class` a short machine-readable cause.
    Unreachable {
        broker: String,
        error: String,
        class: &'static str,
        attempt: u32,
        retry_in_ms: u64,
    },
    /// The broker refused one of our subscriptions (EMQX denies `$SYS/#` to non-local
    /// clients by default).
    SubscribeRefused { broker: String, filter: String },
}

/// What the task sends to the consumer.
#[derive(Clone, Debug, PartialEq)]
pub enum BrokerMsg {
    /// A PUBLISH received during session `session`, at `ts_ns` (wall clock, ns).
    Message {
        session: u64,
        topic: String,
        payload: Vec<u8>,
        ts_ns: u64,
    },
    /// A status change (best effort on this channel; the watch channel always has the
    /// latest).
    Status { ts_ns: u64, status: BrokerStatus },
}

/// Counters shared with the task.
#[derive(Debug, Default)]
pub struct InputStats {
    pub messages: AtomicU64,
    /// Messages (or statuses) dropped because the consumer's channel was full.
    pub dropped_channel_full: AtomicU64,
    pub connects: AtomicU64,
    pub failures: AtomicU64,
}

/// A running broker input. Dropping it stops the task.
pub struct BrokerInput {
    pub rx: mpsc::Receiver<BrokerMsg>,
    pub status: watch::Receiver<BrokerStatus>,
    pub stats: Arc<InputStats>,
    task: JoinHandle<()>,
}

impl BrokerInput {
    /// Validates `cfg`, reads the password and TLS files, and starts the task on the
    /// current tokio runtime. All configuration problems are returned at once.
    pub fn start(cfg: BrokerInputConfig) -> Result<BrokerInput, Vec<String>> {
        let errs = cfg.validate();
        if !errs.is_empty() {
            return Err(errs);
        }
        let ep = parse_url(&cfg.url).map_err(|e| vec![e])?;
        let password = cfg.load_password().map_err(|e| vec![e])?;
        let mut opts = MqttOptions::new(cfg.client_id_or_default(), ep.host.clone(), ep.port);
        opts.set_keep_alive(Duration::from_secs(u64::from(cfg.keepalive_secs)));
        opts.set_clean_session(true);
        opts.set_max_packet_size(cfg.max_packet_bytes, cfg.max_packet_bytes);
        if let Some(user) = &cfg.username {
            let pw = password.as_ref().map(Secret::expose).unwrap_or("");
            opts.set_credentials(user.clone(), pw.to_owned());
        }
        if ep.scheme == Scheme::Tls {
            let tc = tls::client_config(&cfg).map_err(|e| vec![e])?;
            opts.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(tc))));
        }
        let broker = if ep.host.contains(':') {
            format!("[{}]:{}", ep.host, ep.port)
        } else {
            format!("{}:{}", ep.host, ep.port)
        };
        let (tx, rx) = mpsc::channel(cfg.channel_capacity);
        let (status_tx, status) = watch::channel(BrokerStatus::Starting);
        let stats = Arc::new(InputStats::default());
        let mut filters: Vec<String> = cfg.sys_topics.clone();
        filters.extend(cfg.events_topic.iter().cloned());
        let task = tokio::spawn(run(Task {
            opts,
            broker,
            filters,
            backoff_initial_ms: cfg.backoff_initial_ms,
            backoff_max_ms: cfg.backoff_max_ms,
            tx,
            status_tx,
            stats: stats.clone(),
        }));
        Ok(BrokerInput {
            rx,
            status,
            stats,
            task,
        })
    }

    /// Stops the task (also done on drop).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for BrokerInput {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Task {
    opts: MqttOptions,
    broker: String,
    filters: Vec<String>,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    tx: mpsc::Sender<BrokerMsg>,
    status_tx: watch::Sender<BrokerStatus>,
    stats: Arc<InputStats>,
}

impl Task {
    fn report(&self, status: BrokerStatus) {
        let msg = BrokerMsg::Status {
            ts_ns: now_ns(),
            status: status.clone(),
        };
        if self.tx.try_send(msg).is_err() {
            self.stats
                .dropped_channel_full
                .fetch_add(1, Ordering::Relaxed);
        }
        self.status_tx.send_replace(status);
    }
}

async fn run(t: Task) {
    let (client, mut eventloop) = AsyncClient::new(t.opts.clone(), 16);
    let mut rng = Jitter::seeded();
    let mut backoff_ms = t.backoff_initial_ms;
    let mut attempt: u32 = 0;
    let mut session: u64 = 0;
    loop {
        match eventloop.poll().await {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                session += 1;
                attempt = 0;
                backoff_ms = t.backoff_initial_ms;
                t.stats.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(broker = %t.broker, session, "broker input connected");
                // Clean session: subscribe again on every connection. `try_` because this
                // task is the one that drains the request queue.
                let subs = t
                    .filters
                    .iter()
                    .map(|f| SubscribeFilter::new(f.clone(), QoS::AtMostOnce));
                if let Err(e) = client.try_subscribe_many(subs) {
                    tracing::warn!(error = %e, "broker input: subscribe not queued");
                }
                t.report(BrokerStatus::Connected {
                    broker: t.broker.clone(),
                    session,
                });
            }
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                t.stats.messages.fetch_add(1, Ordering::Relaxed);
                let msg = BrokerMsg::Message {
                    session,
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    ts_ns: now_ns(),
                };
                if t.tx.try_send(msg).is_err() {
                    t.stats.dropped_channel_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => {
                // One SUBSCRIBE carries all filters, so return codes follow their order.
                for (rc, f) in ack.return_codes.iter().zip(&t.filters) {
                    if *rc == SubscribeReasonCode::Failure {
                        tracing::warn!(broker = %t.broker, filter = %f, "broker refused subscription");
                        t.report(BrokerStatus::SubscribeRefused {
                            broker: t.broker.clone(),
                            filter: f.clone(),
                        });
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                attempt = attempt.saturating_add(1);
                t.stats.failures.fetch_add(1, Ordering::Relaxed);
                let delay = rng.jittered(backoff_ms);
                let class = classify(&e);
                let error = e.to_string();
                tracing::warn!(broker = %t.broker, %error, class, attempt, retry_in_ms = delay,
                    "broker unreachable");
                t.report(BrokerStatus::Unreachable {
                    broker: t.broker.clone(),
                    error,
                    class,
                    attempt,
                    retry_in_ms: delay,
                });
                tokio::time::sleep(Duration::from_millis(delay)).await;
                backoff_ms = backoff_ms.saturating_mul(2).min(t.backoff_max_ms);
            }
        }
    }
}

/// A short cause for dashboards and alert routing.
fn classify(e: &ConnectionError) -> &'static str {
    match e {
        ConnectionError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection_refused",
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                "connection_reset"
            }
            std::io::ErrorKind::UnexpectedEof => "connection_closed",
            std::io::ErrorKind::TimedOut => "timeout",
            _ => "io",
        },
        ConnectionError::Tls(_) => "tls",
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => "auth",
        ConnectionError::ConnectionRefused(_) => "refused",
        ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => "timeout",
        ConnectionError::MqttState(_) => "protocol",
        _ => "other",
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// xorshift64*: jitter needs spread, not cryptographic quality.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Jitter {
        let seed = now_ns() ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        Jitter(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `base` minus up to 25%: never later than the configured backoff.
    fn jittered(&mut self, base: u64) -> u64 {
        let span = base / 4;
        if span == 0 {
            return base.max(1);
        }
        base - self.next() % (span + 1)
    }
}

/// Applies the input's messages to a [`BrokerFeed`]: starts a new `$SYS` session when the
/// session number changes and turns `Unreachable` reports into events.
#[derive(Debug, Default)]
pub struct FeedDriver {
    pub feed: BrokerFeed,
    session: u64,
}

impl FeedDriver {
    pub fn new(feed: BrokerFeed) -> FeedDriver {
        FeedDriver { feed, session: 0 }
    }

    pub fn on_msg(&mut self, msg: &BrokerMsg) -> Option<Event> {
        match msg {
            BrokerMsg::Message {
                session,
                topic,
                payload,
                ts_ns,
            } => {
                if *session != self.session {
                    self.session = *session;
                    self.feed.on_session_start();
                }
                self.feed.on_message(topic, payload, *ts_ns)
            }
            BrokerMsg::Status { ts_ns, status } => status_event(*ts_ns, status),
        }
    }
}

/// `Unreachable` as an event of the shared model (`detail` = the cause class).
pub fn status_event(ts_ns: u64, status: &BrokerStatus) -> Option<Event> {
    let BrokerStatus::Unreachable { broker, class, .. } = status else {
        return None;
    };
    let mut e = Event::new(ts_ns, EventKind::BrokerUnreachable);
    e.source = EventSource::BrokerInput;
    e.broker_addr = broker.parse::<SocketAddr>().ok();
    e.detail = Some(class);
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter_below() {
        let mut j = Jitter(12345);
        for _ in 0..1000 {
            let d = j.jittered(1000);
            assert!((750..=1000).contains(&d), "{d}");
        }
        assert_eq!(j.jittered(0), 1);
        assert_eq!(j.jittered(3), 3);
    }

    #[test]
    fn unreachable_becomes_an_event() {
        let s = BrokerStatus::Unreachable {
            broker: "127.0.0.1:1883".into(),
            error: "I/O: Connection refused".into(),
            class: "connection_refused",
            attempt: 1,
            retry_in_ms: 500,
        };
        let e = status_event(7, &s).unwrap();
        assert_eq!(e.kind, EventKind::BrokerUnreachable);
        assert_eq!(e.source, EventSource::BrokerInput);
        assert_eq!(e.detail, Some("connection_refused"));
        assert_eq!(e.broker_addr, Some("127.0.0.1:1883".parse().unwrap()));
        let c = BrokerStatus::Connected {
            broker: "b:1".into(),
            session: 1,
        };
        assert!(status_event(7, &c).is_none());
    }

    #[test]
    fn a_new_session_clears_sys_values() {
        let mut d = FeedDriver::default();
        let m = |session, topic: &str, payload: &[u8]| BrokerMsg::Message {
            session,
            topic: topic.into(),
            payload: payload.to_vec(),
            ts_ns: 1,
        };
        d.on_msg(&m(1, "$SYS/broker/clients/maximum", b"5"));
        assert_eq!(d.feed.sys.primary().unwrap().clients_maximum, Some(5));
        d.on_msg(&m(2, "$SYS/broker/heap/current", b"10"));
        let p = d.feed.sys.primary().unwrap();
        assert_eq!((p.clients_maximum, p.heap_current), (None, Some(10)));
    }
}
