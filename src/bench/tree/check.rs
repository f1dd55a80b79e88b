//! The correctness check of `bench --tree`: every run's result for each file against the first
//! run's, and the combined checksum each way reports.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::processor::{Algorithm, Checksum};

/// The first run's results: what every other run must give.
pub(super) struct Reference {
    way: String,
    digests: Vec<String>,
}

/// Compares a run's results with the first run's (taking them as the reference if there was none).
pub(super) fn check(
    reference: &mut Option<Reference>,
    way: &str,
    paths: &[PathBuf],
    out: &[String],
) -> Result<()> {
    if let Some(i) = out.iter().position(String::is_empty) {
        return Err(Error::Mismatch {
            path: paths[i].clone(),
            way: way.into(),
            got: "no result".into(),
            reference: "every way".into(),
            expected: "one".into(),
        });
    }
    match reference {
        None => {
            *reference = Some(Reference {
                way: way.into(),
                digests: out.to_vec(),
            })
        }
        Some(r) => {
            if let Some(i) = (0..out.len()).find(|&i| out[i] != r.digests[i]) {
                return Err(Error::Mismatch {
                    path: paths[i].clone(),
                    way: way.into(),
                    got: out[i].clone(),
                    reference: r.way.clone(),
                    expected: r.digests[i].clone(),
                });
            }
        }
    }
    Ok(())
}

/// XXH3 of the results, one line each, in order.
pub(super) fn combined(out: &[String]) -> String {
    let mut sum = Checksum::new(Algorithm::Xxh3);
    for d in out {
        sum.update(d.as_bytes());
        sum.update(b"\n");
    }
    sum.hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_differing_result_fails_naming_the_file_and_both_ways() {
        let paths = vec![PathBuf::from("a"), PathBuf::from("b")];
        let mut reference = None;
        check(&mut reference, "many", &paths, &["1".into(), "2".into()]).unwrap();
        check(&mut reference, "threads", &paths, &["1".into(), "2".into()]).unwrap();
        let e = check(
            &mut reference,
            "tokio-fs",
            &paths,
            &["1".into(), "3".into()],
        )
        .unwrap_err();
        match &e {
            Error::Mismatch {
                path,
                way,
                got,
                reference,
                expected,
            } => {
                assert_eq!(path, Path::new("b"));
                assert_eq!((way.as_str(), got.as_str()), ("tokio-fs", "3"));
                assert_eq!((reference.as_str(), expected.as_str()), ("many", "2"));
            }
            e => panic!("{e}"),
        }
        assert!(e.to_string().contains("disagree"), "{e}");
        let e = check(
            &mut reference,
            "one-by-one",
            &paths,
            &["1".into(), String::new()],
        );
        assert!(
            matches!(e, Err(Error::Mismatch { .. })),
            "a missing result fails too"
        );
    }

    #[test]
    fn the_combined_checksum_follows_every_result_and_their_order() {
        let a = combined(&["1".into(), "2".into()]);
        assert_eq!(a, combined(&["1".into(), "2".into()]));
        assert_ne!(a, combined(&["2".into(), "1".into()]));
        assert_ne!(a, combined(&["12".into()]));
    }
}
