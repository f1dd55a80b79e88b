//! `--range OFFSET:LENGTH` and `--ranges-from FILE`: which ranges of a file to read.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use ringread::ranges::{ByteRange, Order, RangeOptions};

use super::parse_size_arg;

#[derive(Debug, Args)]
pub(crate) struct RangeArgs {
    /// Read only LENGTH bytes at OFFSET of each file (4K:1M, 0:512...); repeatable, in the order
    /// given (cat writes them; sum hashes and count counts them as one stream); a range past the
    /// end gives the bytes up to the end
    #[arg(long = "range", value_name = "OFFSET:LENGTH", value_parser = parse_range)]
    ranges: Vec<ByteRange>,
    /// Read the ranges listed in FILE, one OFFSET:LENGTH a line ("-": standard input), after any
    /// --range
    #[arg(long, value_name = "FILE")]
    ranges_from: Option<PathBuf>,
    /// Share one read between ranges at most SIZE apart (and within a chunk) [default: 0, ranges
    /// that touch or overlap]; "none": every range read alone
    #[arg(long, value_name = "SIZE", value_parser = parse_gap)]
    merge_gap: Option<Gap>,
}

/// A `--merge-gap`: bytes, or none (no merging).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gap(Option<u64>);

/// `OFFSET:LENGTH`, each a size as --chunk-size takes them.
pub(crate) fn parse_range(s: &str) -> Result<ByteRange, String> {
    let (off, len) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not OFFSET:LENGTH (4K:1M, say)"))?;
    Ok(ByteRange::new(
        parse_size_arg(off.trim())?,
        parse_size_arg(len.trim())?,
    ))
}

fn parse_gap(s: &str) -> Result<Gap, String> {
    if s == "none" {
        Ok(Gap(None))
    } else {
        parse_size_arg(s).map(|g| Gap(Some(g)))
    }
}

impl RangeArgs {
    /// The ranges asked for, and how to read them; `None` when no range option was given.
    pub(crate) fn gather(&self) -> anyhow::Result<Option<(Vec<ByteRange>, RangeOptions)>> {
        let Some(from) = &self.ranges_from else {
            return Ok((!self.ranges.is_empty()).then(|| (self.ranges.clone(), self.options())));
        };
        let text = if from.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("--ranges-from -")?
        } else {
            std::fs::read_to_string(from)
                .with_context(|| format!("--ranges-from {}", from.display()))?
        };
        let mut ranges = self.ranges.clone();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r = parse_range(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", from.display(), n + 1))?;
            ranges.push(r);
        }
        Ok(Some((ranges, self.options())))
    }

    fn options(&self) -> RangeOptions {
        RangeOptions::new()
            .order(Order::Request)
            .merge_gap(self.merge_gap.map_or(Some(0), |g| g.0))
    }
}
