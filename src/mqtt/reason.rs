//! TODO: implemented by the mqtt work.
