//! Fuzzes the `--check` line parser: any bytes, with every default algorithm. It must never panic;
//! what it accepts must be well-formed (hex of the algorithm's length, lower case), and a line it
//! accepts, written back out with `format_line`, must parse to the same entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringread::processor::Algorithm;
use ringread::sumfile::{format_line, parse_line};

fuzz_target!(|data: &[u8]| {
    for algo in Algorithm::ALL {
        if let Some(e) = parse_line(data, algo) {
            assert_eq!(e.hex.len(), e.algorithm.hex_len());
            assert!(e.hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            for tag in [false, true] {
                let line = format_line(e.algorithm, &e.hex, &e.name, tag);
                let again = parse_line(&line[..line.len() - 1], e.algorithm)
                    .expect("a line we wrote parses");
                assert_eq!(again, e);
            }
        }
    }
});
