//! Saving and reloading detector state (baselines) as JSON, atomically: the new state is
//! written beside the old file and renamed over it, so a crash mid-write leaves the
//! previous baselines intact instead of a truncated file.

use std::io::Write;
use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

pub fn save<T: Serialize>(path: &Path, state: &T) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer(&mut f, state)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// `Ok(None)` when there is no saved state yet (first start).
pub fn load<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
