//! Arbitrary UTF-8 into the validator (see `quarry_fuzz::check`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        quarry_fuzz::check(text);
    }
});
