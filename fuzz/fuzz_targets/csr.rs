#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| certmint_fuzz::csr(data));
