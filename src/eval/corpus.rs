//! Loading the NAB corpus from disk (`data/`, `labels/combined_windows.json`,
//! `config/profiles.json`, `reference-results/`). The scoring itself is in [`super::nab`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};

use super::nab::{self, FileLabels, Profile, RowRole};
use super::series::{self, SeriesRow};

/// One data file with its labels.
#[derive(Clone, Debug)]
pub struct CorpusFile {
    /// Path relative to `data/`, e.g. `realKnownCause/nyc_taxi.csv` (NAB's key).
    pub name: String,
    pub rows: Vec<SeriesRow>,
    pub labels: FileLabels,
    pub roles: Vec<RowRole>,
}

/// The corpus: every file named in `combined_windows.json`, in name order.
#[derive(Clone, Debug)]
pub struct Corpus {
    pub root: PathBuf,
    pub files: Vec<CorpusFile>,
    pub profiles: Vec<Profile>,
}

impl Corpus {
    pub fn load(root: &Path) -> anyhow::Result<Corpus> {
        let wpath = root.join("labels/combined_windows.json");
        let text = std::fs::read_to_string(&wpath)
            .with_context(|| format!("reading {}", wpath.display()))?;
        let windows: BTreeMap<String, Vec<(String, String)>> =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", wpath.display()))?;
        let ppath = root.join("config/profiles.json");
        let profiles = nab::parse_profiles(
            &std::fs::read_to_string(&ppath)
                .with_context(|| format!("reading {}", ppath.display()))?,
        )
        .map_err(|e| anyhow!(e))?;
        let mut files = Vec::new();
        for (name, wins) in windows {
            let dpath = root.join("data").join(&name);
            let text = std::fs::read_to_string(&dpath)
                .with_context(|| format!("reading {}", dpath.display()))?;
            let rows =
                series::parse_series(&text).map_err(|e| anyhow!("{}: {e}", dpath.display()))?;
            let ts: Vec<u64> = rows.iter().map(|r| r.ts_ns).collect();
            let mut limits = Vec::new();
            for (a, b) in &wins {
                let a =
                    series::parse_timestamp(a).map_err(|e| anyhow!("{name}: window {a:?}: {e}"))?;
                let b =
                    series::parse_timestamp(b).map_err(|e| anyhow!("{name}: window {b:?}: {e}"))?;
                limits.push((a, b));
            }
            let labels = FileLabels::from_timestamps(&ts, &limits);
            if labels.windows.len() != wins.len() {
                bail!("{name}: a window holds no row of the data");
            }
            let roles = nab::row_roles(&labels);
            files.push(CorpusFile {
                name,
                rows,
                labels,
                roles,
            });
        }
        Ok(Corpus {
            root: root.to_path_buf(),
            files,
            profiles,
        })
    }

    /// Scorable windows over all files (for normalisation).
    pub fn windows(&self) -> usize {
        self.files
            .iter()
            .map(|f| nab::scorable_windows(&f.roles))
            .sum()
    }

    /// Reads a published detector's per-row scores (`reference-results/<detector>/<file>`,
    /// column `anomaly_score`), checking that its rows line up with the data's.
    pub fn reference_scores(&self, detector: &str) -> anyhow::Result<Vec<Vec<f64>>> {
        self.files
            .iter()
            .map(|f| {
                let path = self
                    .root
                    .join("reference-results")
                    .join(detector)
                    .join(&f.name);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let scores = read_column(&text, "anomaly_score")
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?;
                if scores.len() != f.rows.len() {
                    bail!(
                        "{}: {} rows, data has {}",
                        path.display(),
                        scores.len(),
                        f.rows.len()
                    );
                }
                Ok(scores)
            })
            .collect()
    }
}

/// One numeric column of a CSV with a header, by name.
fn read_column(text: &str, column: &str) -> Result<Vec<f64>, String> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l).unwrap_or("");
    let col = header
        .split(',')
        .position(|h| h.trim() == column)
        .ok_or_else(|| format!("no column {column:?}"))?;
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let f = l
                .split(',')
                .nth(col)
                .ok_or_else(|| format!("line {}: too few columns", i + 1))?;
            f.trim()
                .parse()
                .map_err(|_| format!("line {}: bad number {f:?}", i + 1))
        })
        .collect()
}

/// Normalised scores of per-file detections (`detected[file][row]`), one per profile.
pub fn score_detections(
    corpus: &Corpus,
    detected: &[Vec<bool>],
) -> Vec<(String, f64, nab::FileScore)> {
    corpus
        .profiles
        .iter()
        .map(|p| {
            let mut total = nab::FileScore::default();
            for (f, d) in corpus.files.iter().zip(detected) {
                let s = nab::score_file(&f.roles, &p.cost, |i| d.get(i).copied().unwrap_or(false));
                total.raw += s.raw;
                total.tp += s.tp;
                total.fn_ += s.fn_;
                total.fp += s.fp;
            }
            let (null, perfect) = nab::null_and_perfect(corpus.windows(), &p.cost);
            (
                p.name.clone(),
                nab::normalise(total.raw, null, perfect),
                total,
            )
        })
        .collect()
}

/// NAB's best-threshold normalised score per profile for per-file, per-row scores.
pub fn sweep_scores(corpus: &Corpus, scores: &[Vec<f64>]) -> Vec<(String, f64, nab::SweepResult)> {
    let files: Vec<(&[RowRole], &[f64])> = corpus
        .files
        .iter()
        .zip(scores)
        .map(|(f, s)| (f.roles.as_slice(), s.as_slice()))
        .collect();
    corpus
        .profiles
        .iter()
        .map(|p| {
            let r = nab::sweep(&files, &p.cost);
            let (null, perfect) = nab::null_and_perfect(corpus.windows(), &p.cost);
            (p.name.clone(), nab::normalise(r.raw, null, perfect), r)
        })
        .collect()
}
