#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sparsa_fuzz::settings(data));
