//! Telemetry payloads: small JSON documents whose values move like real signals (a
//! mean-reverting random walk, counters that only grow), so payload sizes vary slowly
//! by a character or two as numbers gain and lose digits, the way a plant's do.

use std::io::Write as _;

use crate::synth::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One analogue value: temperature, pressure, voltage, humidity.
    Analog,
    /// Production counter: good and rejected parts.
    Counter,
    /// Machine state (changes rarely).
    State,
    /// Vibration summary: RMS, peak, crest factor.
    Vibration,
    /// Active power and power factor.
    Power,
    /// Energy meter reading (only grows).
    Energy,
}

/// Per-metric signal state.
pub struct Signal {
    value: f64,
    mean: f64,
    sigma: f64,
    total: f64,
    state: u8,
}

const STATES: [&str; 4] = ["RUNNING", "IDLE", "SETUP", "STOPPED"];

/// Approximately standard normal (Irwin–Hall with 4 uniforms, rescaled): cheap and
/// deterministic, tails irrelevant here.
fn gauss(rng: &mut Rng) -> f64 {
    let s: f64 = (0..4).map(|_| rng.unit()).sum();
    (s - 2.0) * 1.732
}

impl Signal {
    pub fn new(shape: Shape, unit: &str, rng: &mut Rng) -> Signal {
        let (mean, sigma) = match (shape, unit) {
            (Shape::Analog, "degC") => (20.0 + rng.unit() * 50.0, 0.15),
            (Shape::Analog, "bar") => (2.0 + rng.unit() * 6.0, 0.03),
            (Shape::Analog, "V") => (229.0 + rng.unit() * 3.0, 0.4),
            (Shape::Analog, _) => (35.0 + rng.unit() * 30.0, 0.3),
            (Shape::Vibration, _) => (1.0 + rng.unit() * 4.0, 0.08),
            (Shape::Power, _) => (5.0 + rng.unit() * 120.0, 0.8),
            _ => (0.0, 0.0),
        };
        Signal {
            value: mean,
            mean,
            sigma,
            total: rng.range(1_000, 900_000) as f64,
            state: 0,
        }
    }

    fn step(&mut self, rng: &mut Rng) {
        // Ornstein–Uhlenbeck step: drifts, but returns towards its operating point.
        self.value += 0.05 * (self.mean - self.value) + self.sigma * gauss(rng);
    }

    /// Writes the next sample as JSON into `out` (cleared first).
    pub fn sample(
        &mut self,
        shape: Shape,
        unit: &str,
        ts_ms: u64,
        device: Option<&str>,
        rng: &mut Rng,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        self.step(rng);
        let _ = write!(out, "{{\"ts\":{ts_ms},");
        let _ = match shape {
            Shape::Analog => write!(
                out,
                "\"value\":{:.2},\"unit\":\"{unit}\",\"quality\":\"good\"",
                self.value
            ),
            Shape::Counter => {
                let good = rng.range(3, 9);
                self.total += good as f64;
                let rejects = (self.total / 400.0) as u64;
                write!(out, "\"good\":{:.0},\"reject\":{rejects}", self.total)
            }
            Shape::State => {
                if rng.chance(0.02) {
                    self.state = rng.below(STATES.len() as u64) as u8;
                }
                let alarms = u8::from(self.state == 3);
                write!(
                    out,
                    "\"state\":\"{}\",\"mode\":\"AUTO\",\"alarms\":{alarms}",
                    STATES[usize::from(self.state) % STATES.len()]
                )
            }
            Shape::Vibration => {
                let rms = self.value.abs();
                let crest = 2.5 + 0.4 * rng.unit();
                write!(
                    out,
                    "\"rms\":{rms:.3},\"peak\":{:.3},\"crest\":{crest:.2},\"unit\":\"{unit}\"",
                    rms * crest
                )
            }
            Shape::Power => write!(
                out,
                "\"kw\":{:.2},\"pf\":{:.3}",
                self.value.abs(),
                0.90 + 0.05 * rng.unit()
            ),
            Shape::Energy => {
                self.total += 0.2 + rng.unit();
                write!(out, "\"kwh\":{:.1}", self.total)
            }
        };
        if let Some(d) = device {
            let _ = write!(out, ",\"device\":\"{d}\",\"fw\":\"3.2.7\"");
        }
        out.push(b'}');
    }
}

/// The retained birth message a device publishes on its status topic.
pub fn online(ts_ms: u64, out: &mut Vec<u8>) {
    out.clear();
    let _ = write!(out, "{{\"state\":\"online\",\"ts\":{ts_ms}}}");
}

/// The will every device registers on its status topic.
pub const OFFLINE: &[u8] = b"{\"state\":\"offline\"}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_json_objects_that_vary_slowly() {
        let mut rng = Rng::new(5);
        for (shape, unit) in [
            (Shape::Analog, "degC"),
            (Shape::Counter, ""),
            (Shape::State, ""),
            (Shape::Vibration, "mm/s"),
            (Shape::Power, "kW"),
            (Shape::Energy, "kWh"),
        ] {
            let mut s = Signal::new(shape, unit, &mut rng);
            let mut out = Vec::new();
            let mut lens = Vec::new();
            for i in 0..200 {
                s.sample(
                    shape,
                    unit,
                    1_704_067_200_000 + i * 5000,
                    None,
                    &mut rng,
                    &mut out,
                );
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                assert!(v.is_object());
                lens.push(out.len());
            }
            let (min, max) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
            assert!(max - min <= 6, "{shape:?}: sizes {min}..{max}");
        }
    }
}
