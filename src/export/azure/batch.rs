//! Rows waiting for delivery and the requests cut from them. Pure: no I/O, time passed in.
//!
//! Each `LogRecord` is serialised once when it is queued, so its size is known exactly. A
//! request body is a JSON array of the oldest rows, `[row,row,...]`, gzip-compressed; the
//! array is cut so its uncompressed length is at most the limit, and if its gzip form
//! were still larger (incompressible text near the limit) the cut is halved. Rows leave
//! the queue only when the request carrying them succeeded or was given up, so a retry
//! sends the same rows and nothing is sent again after a success.

use std::collections::VecDeque;
use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::time::Instant;

#[derive(Debug)]
struct Row {
    json: Vec<u8>,
    queued_at: Instant,
}

/// One request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    /// The first `rows` queued rows are in it.
    pub rows: usize,
    /// Uncompressed JSON array length.
    pub raw_len: usize,
    /// gzip of the array.
    pub body: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    Batch(Batch),
    /// The oldest row alone compresses to more than the limit: it can never be sent.
    FrontTooLarge,
    Empty,
}

#[derive(Debug, Default)]
pub(crate) struct RowQueue {
    rows: VecDeque<Row>,
    /// Sum of the rows' JSON lengths.
    bytes: usize,
}

/// Length of `[a,b,...]` holding `n` rows of `bytes` total.
fn array_len(n: usize, bytes: usize) -> usize {
    bytes + n.saturating_sub(1) + 2
}

/// Whether one row of `len` bytes can ever fit in a request of `limit` bytes.
pub(crate) fn row_fits(len: usize, limit: usize) -> bool {
    array_len(1, len) <= limit
}

impl RowQueue {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Queues a row (the caller checked it with [`row_fits`]).
    pub fn push(&mut self, json: Vec<u8>, now: Instant) {
        self.bytes += json.len();
        self.rows.push_back(Row {
            json,
            queued_at: now,
        });
    }

    pub fn oldest(&self) -> Option<Instant> {
        self.rows.front().map(|r| r.queued_at)
    }

    /// The queued rows fill a request of `limit` bytes: send now rather than wait.
    pub fn full(&self, limit: usize) -> bool {
        !self.rows.is_empty() && array_len(self.rows.len(), self.bytes) >= limit
    }

    /// Removes the `n` oldest rows; returns how many were removed.
    pub fn pop(&mut self, n: usize) -> usize {
        let n = n.min(self.rows.len());
        for r in self.rows.drain(..n) {
            self.bytes -= r.json.len();
        }
        n
    }

    /// The request for the oldest rows: as many as fit in `limit` uncompressed, fewer if
    /// their gzip form does not fit either.
    pub fn cut(&self, limit: usize) -> io::Result<Cut> {
        let mut n = 0;
        let mut bytes = 0;
        for r in &self.rows {
            if array_len(n + 1, bytes + r.json.len()) > limit {
                break;
            }
            n += 1;
            bytes += r.json.len();
        }
        if self.rows.is_empty() {
            return Ok(Cut::Empty);
        }
        while n > 0 {
            let (raw_len, body) = self.gzip(n)?;
            if body.len() <= limit {
                return Ok(Cut::Batch(Batch {
                    rows: n,
                    raw_len,
                    body,
                }));
            }
            n /= 2;
        }
        Ok(Cut::FrontTooLarge)
    }

    fn gzip(&self, n: usize) -> io::Result<(usize, Vec<u8>)> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        let mut raw_len = 2;
        gz.write_all(b"[")?;
        for (i, r) in self.rows.iter().take(n).enumerate() {
            if i > 0 {
                gz.write_all(b",")?;
                raw_len += 1;
            }
            gz.write_all(&r.json)?;
            raw_len += r.json.len();
        }
        gz.write_all(b"]")?;
        Ok((raw_len, gz.finish()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(b).read_to_end(&mut out).unwrap();
        out
    }

    fn row(i: usize, pad: usize) -> Vec<u8> {
        format!(r#"{{"Message":"r{i}","Detail":"{}"}}"#, "x".repeat(pad)).into_bytes()
    }

    #[test]
    fn cuts_at_the_limit_and_keeps_order() {
        let now = Instant::now();
        let mut q = RowQueue::default();
        for i in 0..10 {
            q.push(row(i, 80), now);
        }
        // {"Message":"r0","Detail":"<80 x>"}: 26 + 80 + 2 bytes.
        assert_eq!(row(0, 80).len(), 108);
        // 3 rows: 3*108 + 2 commas + 2 brackets = 328; 4 rows = 437.
        let Cut::Batch(b) = q.cut(436).unwrap() else {
            panic!()
        };
        assert_eq!((b.rows, b.raw_len), (3, 328));
        let arr: Vec<serde_json::Value> = serde_json::from_slice(&gunzip(&b.body)).unwrap();
        let ids: Vec<_> = arr.iter().map(|v| v["Message"].as_str().unwrap()).collect();
        assert_eq!(ids, ["r0", "r1", "r2"]);
        // All 10: 1080 + 9 + 2 = 1091.
        assert!(q.full(1091));
        assert!(!q.full(1092));
        assert_eq!(q.pop(3), 3);
        let Cut::Batch(b) = q.cut(437).unwrap() else {
            panic!()
        };
        assert_eq!((b.rows, b.raw_len), (4, 437));
        let arr: Vec<serde_json::Value> = serde_json::from_slice(&gunzip(&b.body)).unwrap();
        assert_eq!(arr[0]["Message"], "r3");
        assert_eq!(q.pop(100), 7);
        assert_eq!(q.cut(417).unwrap(), Cut::Empty);
        assert!(q.is_empty());
    }

    #[test]
    fn a_cut_whose_gzip_form_is_too_large_is_halved() {
        // gzip adds 18 bytes of header and trailer, so tiny arrays grow: Python's
        // gzip.compress at level 6 gives 9 -> 29 and 25 -> 31 bytes for these arrays.
        let now = Instant::now();
        let mut q = RowQueue::default();
        for _ in 0..3 {
            q.push(br#"{"a":1}"#.to_vec(), now);
        }
        assert!(row_fits(7, 9) && !row_fits(7, 8));
        // All three fit raw (25 bytes) but not compressed; one alone neither.
        assert_eq!(q.cut(25).unwrap(), Cut::FrontTooLarge);
        let Cut::Batch(b) = q.cut(30).unwrap() else {
            panic!("one row fits in 30")
        };
        assert_eq!((b.rows, b.raw_len), (1, 9));
        assert!(b.body.len() <= 30);
        let Cut::Batch(b) = q.cut(40).unwrap() else {
            panic!()
        };
        assert_eq!(b.rows, 3);
        assert_eq!(gunzip(&b.body), br#"[{"a":1},{"a":1},{"a":1}]"#);
    }
}
