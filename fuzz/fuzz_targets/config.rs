//! The configuration file: `config::Config::parse` (TOML, then every check). An operator writes
//! it, but `arid --check-config` and reloads read whatever is there.
#![no_main]

use ari::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Config::parse(text, Path::new("/etc/ari/arid.toml")) {
        let _ = c.origin();
        let _ = format!("{c:?}");
    }
});
