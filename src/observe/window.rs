//! Stub: filled in by the topics work.
