//! Stub: topic grouping and per-group statistics (topics work).
