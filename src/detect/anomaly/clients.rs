//! Per client: publish rate (spike, drop), silence of a normally periodic device, new
//! clients, and the peer comparison (features gathered here, clustering in `peers`).
//!
//! A client's period is learned at bucket resolution: the time between buckets in which
//! it published. A device publishing every second has a 10 s "period" at 10 s buckets,
//! so it is called silent after `periods` x 10 s (and at least `min_silence_s`).

use serde::{Deserialize, Serialize};

use crate::detect::rules::hit::{AnomalyDetail, Severity};
use crate::observe::Observer;
use crate::observe::tracker::ClientActivity;

use super::emit::{Alarm, Ctx, num};
use super::engine::AnomalyEngine;
use super::known::{Seen, name_hash};
use super::peers::{self, NF};
use super::topics::BASELINE_HALFLIFE;
use super::track::{self, Track};

/// Client ids in keys and summaries are cut to this many characters.
const MAX_ID_CHARS: usize = 128;

pub fn id_text(id: &[u8]) -> String {
    String::from_utf8_lossy(id)
        .chars()
        .take(MAX_ID_CHARS)
        .collect()
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClientTotals {
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
    pub connects: u64,
}

impl ClientTotals {
    fn of(c: &ClientActivity<'_>) -> ClientTotals {
        ClientTotals {
            msgs_in: c.msgs_in,
            bytes_in: c.bytes_in,
            msgs_out: c.msgs_out,
            bytes_out: c.bytes_out,
            connects: c.connects,
        }
    }

    fn below(&self, o: &ClientTotals) -> bool {
        self.msgs_in < o.msgs_in
            || self.bytes_in < o.bytes_in
            || self.msgs_out < o.msgs_out
            || self.bytes_out < o.bytes_out
            || self.connects < o.connects
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientState {
    #[serde(skip)]
    pub prev: Option<ClientTotals>,
    /// Totals at the last peer run and when they were taken.
    #[serde(skip)]
    pub peer_prev: Option<(ClientTotals, u64)>,
    pub rate: Option<Track>,
    /// End of the last bucket with a PUBLISH from the client (not saved: after a
    /// restart the client is given the benefit of the doubt).
    #[serde(skip)]
    pub last_pub_ns: Option<u64>,
    /// Gap between publishing buckets: EWMA, its mean absolute deviation, count.
    pub gap_s: f64,
    pub gap_dev_s: f64,
    pub gaps: u64,
    pub silent_since: Option<u64>,
    /// Outlier when first compared with its peers, and around since the learning
    /// period: part of what normal looks like here.
    pub peer_accepted: bool,
    /// Compared with its peers at least once.
    #[serde(default)]
    pub peer_scored: bool,
    pub peer_firing: bool,
    /// Time of the last peer run that scored this client.
    #[serde(skip)]
    pub peer_seen: u64,
    pub last_active_ns: u64,
}

impl ClientState {
    pub fn series(&self) -> usize {
        usize::from(self.rate.is_some())
    }

    pub fn any_firing(&self) -> bool {
        self.rate.as_ref().is_some_and(Track::is_firing)
            || self.silent_since.is_some()
            || self.peer_firing
    }

    fn periodic(&self, min_gaps: u64, max_jitter: f64) -> bool {
        self.gaps >= min_gaps && self.gap_s > 0.0 && self.gap_dev_s <= max_jitter * self.gap_s
    }
}

/// One active client's features for the peer run.
struct PeerRow {
    id: Box<[u8]>,
    hash: u64,
    first_seen_ns: u64,
    f: [f64; NF],
}

const RATE: &str = "client msgs_in per bucket";
const SILENCE: &str = "seconds since last publishing bucket";
const PEER: &str = "distance to nearest peer group";

impl AnomalyEngine {
    pub(super) fn clients_pass(&mut self, obs: &Observer, now: u64, elapsed: u64) {
        let per_bucket = self.cfg.bucket_ns() as f64 / elapsed.max(1) as f64;
        self.clock.since_peer += 1;
        let peer_run =
            self.cfg.peers.enabled && self.clock.since_peer >= self.cfg.peers.every_buckets;
        let mut rows: Vec<PeerRow> = Vec::new();
        obs.tracker().for_each_client(|c| {
            if let Some(r) = self.on_client(c, now, per_bucket, peer_run) {
                rows.push(r);
            }
        });
        if peer_run {
            self.clock.since_peer = 0;
            self.clock.last_peer_ns = Some(now);
            self.peer_run(rows, now);
        }
    }

    fn on_client(
        &mut self,
        c: &ClientActivity<'_>,
        now: u64,
        per_bucket: f64,
        peer_run: bool,
    ) -> Option<PeerRow> {
        if c.client_id.is_empty() {
            return None;
        }
        let id = c.client_id;
        if !self.clients.contains_key(id) {
            let seen = self
                .known_clients
                .see(name_hash(b'c', id), self.cfg.max_known);
            if seen == Seen::New && self.cfg.new_names.clients && self.learned(now) {
                let t = id_text(id);
                self.new_name(1, format!("client:{t}"), now, Some(c.first_seen_ns), || {
                    format!("new client {t} (first seen after the learning period)")
                });
            }
            if self.clients.len() >= self.cfg.max_clients {
                self.c.entities_refused += 1;
                return None;
            }
            self.clients.insert(
                id.into(),
                ClientState {
                    last_active_ns: now,
                    ..ClientState::default()
                },
            );
        }
        let weekly = self.weekly();
        let rate_p = self.params(BASELINE_HALFLIFE, 1.0);
        let warm = self.clock.first_ns.is_some_and(|f| {
            now.saturating_sub(f) >= self.cfg.warmup_s.saturating_mul(1_000_000_000)
        });
        let bucket_ns = self.cfg.bucket_ns();
        let cfg = &self.cfg;
        let st = self.clients.get_mut(id)?;
        let tot = ClientTotals::of(c);
        let mut ctx = Ctx {
            alerts: &mut self.alerts,
            now,
            bucket_ns,
        };
        let mut key: Option<String> = None;
        let mut key_of = || {
            key.get_or_insert_with(|| format!("client:{}", id_text(id)))
                .clone()
        };

        let prev = st.prev.replace(tot);
        let valid = prev.is_some_and(|p| !tot.below(&p));
        let d_in = match prev {
            Some(p) if valid => (tot.msgs_in - p.msgs_in) as f64 * per_bucket,
            _ => 0.0,
        };
        if valid && (tot != prev.unwrap_or_default() || c.connected) {
            st.last_active_ns = now;
        }

        // Periodicity and silence.
        if valid && d_in > 0.0 {
            if let Some(last) = st.last_pub_ns {
                let gap = now.saturating_sub(last) as f64 * 1e-9;
                st.gaps += 1;
                if st.gaps == 1 {
                    st.gap_s = gap;
                    st.gap_dev_s = 0.0;
                } else {
                    let a = (1.0 - 0.5f64.powf(1.0 / 20.0)).max(1.0 / st.gaps as f64);
                    st.gap_dev_s += a * ((gap - st.gap_s).abs() - st.gap_dev_s);
                    st.gap_s += a * (gap - st.gap_s);
                }
            }
            st.last_pub_ns = Some(now);
            if st.silent_since.take().is_some() {
                ctx.clear("anomaly_silence", &key_of());
            }
        }
        if let Some(last) = st.last_pub_ns {
            let sc = &cfg.silence;
            let silent_s = now.saturating_sub(last) as f64 * 1e-9;
            if st.silent_since.is_some() {
                ctx.keep("anomaly_silence", &key_of(), None, None);
            } else if sc.enabled
                && warm
                && d_in == 0.0
                && st.periodic(sc.client_min_gaps, sc.client_max_jitter)
            {
                let limit = (sc.periods * st.gap_s).max(sc.min_silence_s);
                if silent_s >= limit {
                    st.silent_since = Some(last);
                    let detail = AnomalyDetail {
                        series: SILENCE.into(),
                        baseline: st.gap_s,
                        observed: silent_s,
                        threshold: limit,
                        score: 0.0,
                    };
                    let t = id_text(id);
                    let s = format!(
                        "client {t} has not published for {}s; it normally publishes every {}s or more often",
                        num(silent_s.round()),
                        num(st.gap_s.round())
                    );
                    ctx.fire(
                        "anomaly_silence",
                        Severity::Medium,
                        &key_of(),
                        detail,
                        Some(last),
                        s,
                    );
                }
            }
        }

        // Publish rate.
        if cfg.rate.enabled && cfg.rate.per_client && valid && (d_in > 0.0 || st.rate.is_some()) {
            if st.rate.is_none() {
                st.rate = AnomalyEngine::new_track(&mut self.budget, &self.dcfg, weekly, now);
            }
            if let Some(t) = st.rate.as_mut() {
                let rc = &cfg.rate;
                let periodic = st.gaps >= cfg.silence.client_min_gaps;
                let step = t.step(now, d_in, &rate_p, |e, x| {
                    if periodic && x == 0.0 {
                        return track::count_spike(e, x, rc.spike_ratio, rc.spike_min_delta, rc.z);
                    }
                    track::count_change(e, x, rc)
                });
                if step != track::Step::Quiet {
                    let k = key_of();
                    let a = Alarm {
                        up_rule: "anomaly_rate_spike",
                        down_rule: "anomaly_rate_drop",
                        severity: Severity::Medium,
                        key: &k,
                        series: RATE,
                        x: d_in,
                        sample_ts: Some(c.last_seen_ns),
                    };
                    let t = id_text(id);
                    ctx.apply(step, &a, |up, e, thr| {
                        format!(
                            "client {t}: {} PUBLISH in one bucket, baseline {} ({} {})",
                            num(d_in),
                            num(e),
                            if up { "spike above" } else { "drop below" },
                            num(thr)
                        )
                    });
                }
            }
        }

        if !peer_run {
            return None;
        }
        let (base, since) = match st.peer_prev {
            Some((p, t)) if !tot.below(&p) => (p, t),
            _ => (
                ClientTotals::default(),
                c.first_seen_ns.max(self.clock.last_peer_ns.unwrap_or(0)),
            ),
        };
        st.peer_prev = Some((tot, now));
        let span_min = now.saturating_sub(since) as f64 / 60e9;
        let active = tot != base || c.connected;
        if !active || span_min <= 0.0 {
            return None;
        }
        let din = (tot.msgs_in - base.msgs_in) as f64;
        let dout = (tot.msgs_out - base.msgs_out) as f64;
        let per = |b: u64, n: f64| if n > 0.0 { b as f64 / n } else { 0.0 };
        Some(PeerRow {
            id: id.into(),
            hash: name_hash(b's', id),
            first_seen_ns: c.first_seen_ns,
            f: [
                din / span_min,
                dout / span_min,
                per(tot.bytes_in - base.bytes_in, din),
                per(tot.bytes_out - base.bytes_out, dout),
                (tot.connects - base.connects) as f64,
                f64::from(c.subscriptions),
                f64::from(c.keep_alive),
            ],
        })
    }

    /// Clusters the active clients and raises / clears peer-outlier alerts. A client
    /// that is an outlier the first time it is compared, and was around before the
    /// learning period ended, is accepted as normal for this site (a lone historian, a
    /// bridge); clients that turn into outliers later, or new ones that are, are
    /// alerted. An accepted client that comes back among its peers loses the pass.
    fn peer_run(&mut self, mut rows: Vec<PeerRow>, now: u64) {
        let pc = self.cfg.peers.clone();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let score: Vec<[f64; NF]> = rows.iter().map(|r| r.f).collect();
        let fit: Vec<[f64; NF]> = if rows.len() > pc.max_clients {
            // A deterministic, uniform sample: the smallest fixed-seed hashes.
            let mut by_hash: Vec<(u64, usize)> =
                rows.iter().enumerate().map(|(i, r)| (r.hash, i)).collect();
            by_hash.sort_unstable();
            by_hash.truncate(pc.max_clients);
            by_hash.sort_unstable_by_key(|&(_, i)| i);
            by_hash
                .iter()
                .filter_map(|&(_, i)| score.get(i).copied())
                .collect()
        } else {
            score.clone()
        };
        let run = peers::run(&fit, &score, &pc);
        self.c.peer_runs += 1;
        self.c.peer_clients = score.len() as u64;
        self.c.peer_k = run.k as u64;
        self.c.peer_groups = run.peer_groups as u64;
        if run.k == 0 {
            return;
        }
        let learned_at = self.clock.first_ns.map_or(now, |f| {
            f.saturating_add(self.cfg.learn_s.saturating_mul(1_000_000_000))
        });
        let bucket_ns = self.cfg.bucket_ns();
        let mut ctx = Ctx {
            alerts: &mut self.alerts,
            now,
            bucket_ns,
        };
        let mut details = run.outliers.iter().peekable();
        for (i, row) in rows.iter().enumerate() {
            let Some(st) = self.clients.get_mut(&row.id) else {
                continue;
            };
            let out = run.is_outlier.get(i).copied().unwrap_or(false);
            let detail = if out {
                while details.peek().is_some_and(|o| o.index < i) {
                    details.next();
                }
                details.peek().filter(|o| o.index == i).copied()
            } else {
                None
            };
            let key = || format!("client:{}", id_text(&row.id));
            st.peer_seen = now;
            let first = !st.peer_scored;
            st.peer_scored = true;
            match (out, detail) {
                (true, Some(o)) => {
                    if first && row.first_seen_ns < learned_at {
                        st.peer_accepted = true;
                    } else if st.peer_firing {
                        ctx.keep(
                            "anomaly_peer_outlier",
                            &key(),
                            Some(format!("{PEER} = {:.2}", o.distance)),
                            None,
                        );
                    } else if !st.peer_accepted {
                        st.peer_firing = true;
                        let d = AnomalyDetail {
                            series: PEER.into(),
                            baseline: o.limit / pc.distance,
                            observed: o.distance,
                            threshold: o.limit,
                            score: 0.0,
                        };
                        let s = format!(
                            "client {} behaves unlike its peers: {} = {} where its nearest peer group has about {}",
                            id_text(&row.id),
                            o.feature,
                            num(o.value),
                            num(o.typical)
                        );
                        ctx.fire("anomaly_peer_outlier", Severity::Low, &key(), d, None, s);
                    }
                }
                _ => {
                    st.peer_accepted = false;
                    if st.peer_firing {
                        st.peer_firing = false;
                        ctx.clear("anomaly_peer_outlier", &key());
                    }
                }
            }
        }
        // Outliers that are no longer active have no behaviour left to compare.
        for (id, st) in self.clients.iter_mut() {
            if st.peer_firing && st.peer_seen != now {
                st.peer_firing = false;
                ctx.clear("anomaly_peer_outlier", &format!("client:{}", id_text(id)));
            }
        }
    }
}
