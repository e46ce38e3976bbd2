//! Data sets from a folder of captioned video files (`syncdraw-train data --videos`).
//!
//! The captions file is CSV with a header row `video,caption`: the video's path
//! relative to the folder, and its caption (double-quoted if it holds a comma).
//! Every caption must follow the given grammar (syncdraw_format::Grammar). Every
//! video is decoded by GStreamer (video_io.rs: any container and codec the
//! installed plugins read), N frames are taken by a rule (first N, every K-th, or
//! evenly spaced), scaled to H x W, grey or RGB.
//!
//! Split by caption, held-out combinations: a video is in the test split when the
//! sum of its slot indices (every slot of every object, 0-based) is congruent to
//! V - 1 modulo V, V the number of values of the grammar's last slot. With two
//! motions this puts, of every combination of the other slots, one motion in train
//! and the other in test, and every single slot value still appears in training;
//! for one-digit Bouncing MNIST it is exactly the paper's split (bouncing.rs).
//!
//! A file that cannot be decoded, a video shorter than the rule needs and a caption
//! outside the grammar are reported by name with the reason and counted, never
//! dropped silently; the others are imported. The split files are written at the
//! end, each atomically, so an import that fails leaves what was there before.
//!
//! File format (`<out>/train.sdfv`, `<out>/test.sdfv`): 8 bytes `SDFV0001`, a u64
//! little-endian length J, J bytes of JSON header ([`Header`]), then u8 pixels,
//! videos x frames x channels x height x width.
use super::bouncing::Split;
use super::video_io::{self, FrameSpec};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use syncdraw_format::Grammar;

const MAGIC: &[u8; 8] = b"SDFV0001";

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("GStreamer: {0}")]
    Gst(String),
}

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub videos: PathBuf,
    pub captions: PathBuf,
    pub grammar: Grammar,
    /// Frames, size, channels (1 grey or 3 RGB) and frame rule.
    pub spec: FrameSpec,
    pub out: PathBuf,
}

/// One imported video's labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FolderVideo {
    /// Path relative to the videos folder, as in the captions file.
    pub file: String,
    pub caption: String,
    /// The caption parsed by the grammar: per object, the value index of each slot.
    pub objects: Vec<Vec<usize>>,
}

/// The JSON header of a split file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub grammar: Grammar,
    #[serde(flatten)]
    pub spec: FrameSpec,
    pub split: Split,
    pub videos: Vec<FolderVideo>,
}

/// A split read back.
#[derive(Debug, Clone)]
pub struct FolderDataset {
    pub header: Header,
    pub pixels: Vec<u8>,
}

/// A video that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// Line of the captions file (from 1, the header is line 1).
    pub line: usize,
    pub file: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub listed: usize,
    pub imported: usize,
    pub train: usize,
    pub test: usize,
    pub skipped: Vec<Skipped>,
    pub train_file: PathBuf,
    pub test_file: PathBuf,
}

/// The split of a parsed caption (module documentation).
pub fn split_of(grammar: &Grammar, objects: &[Vec<usize>]) -> Split {
    let v = grammar.slots.last().map_or(1, |s| s.values.len()).max(1);
    let sum: usize = objects.iter().flatten().sum();
    if sum % v == v - 1 && v > 1 {
        Split::Test
    } else {
        Split::Train
    }
}

/// Captions of `split` that `grammar` can write, in a fixed order: objects from
/// `min_objects` up, and within a count every combination of slot values (the
/// last slot of the last object varying fastest), at most `limit` of them. A
/// grammar has no other list of its captions, so a model trained on a folder set
/// takes its example captions from here rather than from the files.
pub fn grammar_captions(grammar: &Grammar, split: Split, limit: usize) -> Vec<String> {
    let sizes: Vec<usize> = grammar.slots.iter().map(|s| s.values.len()).collect();
    let mut out = Vec::new();
    if sizes.is_empty() || sizes.contains(&0) {
        return out;
    }
    for count in grammar.min_objects.max(1)..=grammar.max_objects {
        let positions = count * sizes.len();
        let mut digits = vec![0usize; positions];
        loop {
            let objects: Vec<Vec<usize>> =
                digits.chunks(sizes.len()).map(<[usize]>::to_vec).collect();
            if out.len() >= limit {
                return out;
            }
            if split_of(grammar, &objects) == split {
                out.push(grammar.caption(&objects));
            }
            // The next combination, as a mixed-radix counter.
            let mut p = positions;
            loop {
                if p == 0 {
                    break;
                }
                p -= 1;
                digits[p] += 1;
                if digits[p] < sizes[p % sizes.len()] {
                    break;
                }
                digits[p] = 0;
            }
            if digits.iter().all(|&d| d == 0) {
                break;
            }
        }
    }
    out
}

/// Splits one CSV record: fields separated by commas, a field in double quotes may
/// hold commas and doubled quotes.
pub fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.trim_end_matches(['\r', '\n']).chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(c) => return Err(format!("{c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        fields.push(field.trim().to_string());
    }
}

/// Reads the captions file: (line, video, caption) per record.
fn read_captions(path: &Path) -> Result<Vec<(usize, String, String)>, FolderError> {
    let invalid = |reason: String| FolderError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| FolderError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| csv_fields(l))
        .transpose()
        .map_err(|e| invalid(format!("line 1: {e}")))?;
    if header.as_deref() != Some(&["video".to_string(), "caption".to_string()][..]) {
        return Err(invalid(
            "the first line must be the header \"video,caption\" (CSV: a video path relative to the folder, its caption)".into(),
        ));
    }
    let mut records = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = csv_fields(line).map_err(|e| invalid(format!("line {}: {e}", i + 1)))?;
        if f.len() != 2 {
            return Err(invalid(format!(
                "line {}: {} fields, expected 2 (video,caption)",
                i + 1,
                f.len()
            )));
        }
        records.push((i + 1, f[0].clone(), f[1].clone()));
    }
    Ok(records)
}

/// Imports the folder as the module documentation says.
pub fn import(opts: &ImportOptions, progress: bool) -> Result<ImportReport, FolderError> {
    if !(opts.spec.channels == 1 || opts.spec.channels == 3) {
        return Err(FolderError::Invalid {
            path: opts.videos.clone(),
            reason: format!(
                "channels must be 1 (grey) or 3 (RGB), got {}",
                opts.spec.channels
            ),
        });
    }
    opts.grammar
        .validate()
        .map_err(|reason| FolderError::Invalid {
            path: opts.captions.clone(),
            reason: format!("the grammar is not valid: {reason}"),
        })?;
    video_io::init().map_err(|e| FolderError::Gst(e.to_string()))?;
    let records = read_captions(&opts.captions)?;
    let bar = if progress {
        ProgressBar::new(records.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} videos  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut splits: [(Vec<FolderVideo>, Vec<u8>); 2] = Default::default();
    let mut skipped = Vec::new();
    for (line, file, caption) in &records {
        bar.inc(1);
        let mut skip = |reason: String| {
            bar.println(format!("skipped {file} (line {line}): {reason}"));
            skipped.push(Skipped {
                line: *line,
                file: file.clone(),
                reason,
            });
        };
        let objects = match opts.grammar.parse(caption) {
            Ok(o) => o,
            Err(e) => {
                skip(format!("caption: {e}"));
                continue;
            }
        };
        let path = opts.videos.join(file);
        if !path.is_file() {
            skip("no such file".into());
            continue;
        }
        let pixels = match video_io::decode(&path, &opts.spec) {
            Ok(p) => p,
            Err(e) => {
                skip(e.to_string());
                continue;
            }
        };
        let s = match split_of(&opts.grammar, &objects) {
            Split::Train => 0,
            Split::Test => 1,
        };
        splits[s].0.push(FolderVideo {
            file: file.clone(),
            caption: caption.clone(),
            objects,
        });
        splits[s].1.extend(pixels);
    }
    bar.finish_and_clear();
    std::fs::create_dir_all(&opts.out).map_err(|source| FolderError::Io {
        path: opts.out.clone(),
        source,
    })?;
    let mut files = Vec::new();
    for (split, (videos, pixels)) in [Split::Train, Split::Test].into_iter().zip(splits) {
        let name = match split {
            Split::Train => "train.sdfv",
            Split::Test => "test.sdfv",
        };
        let data = FolderDataset {
            header: Header {
                grammar: opts.grammar.clone(),
                spec: opts.spec,
                split,
                videos,
            },
            pixels,
        };
        let path = opts.out.join(name);
        data.write(&path)?;
        files.push((path, data.header.videos.len()));
    }
    let report = ImportReport {
        listed: records.len(),
        imported: files[0].1 + files[1].1,
        train: files[0].1,
        test: files[1].1,
        skipped,
        train_file: files[0].0.clone(),
        test_file: files[1].0.clone(),
    };
    let report_path = opts.out.join("import-report.json");
    let text = serde_json::to_string_pretty(&report).expect("serialisable");
    std::fs::write(&report_path, text + "\n").map_err(|source| FolderError::Io {
        path: report_path,
        source,
    })?;
    Ok(report)
}

impl FolderDataset {
    pub fn video_len(&self) -> usize {
        self.header.spec.video_len()
    }

    pub fn len(&self) -> usize {
        self.header.videos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.header.videos.is_empty()
    }

    /// Video `i`: frames x channels x height x width.
    pub fn video(&self, i: usize) -> &[u8] {
        let n = self.video_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// SHA-256 of the header and pixels, as 16 hex digits: what a training run
    /// records to know the set again on resume.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.header).expect("serialisable"));
        h.update(&self.pixels);
        h.finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Writes the split file atomically.
    pub fn write(&self, path: &Path) -> Result<(), FolderError> {
        let json = serde_json::to_vec(&self.header).expect("serialisable");
        crate::atomic::replace(path, |tmp| {
            let mut f = std::io::BufWriter::new(std::fs::File::create(tmp)?);
            f.write_all(MAGIC)?;
            f.write_all(&(json.len() as u64).to_le_bytes())?;
            f.write_all(&json)?;
            f.write_all(&self.pixels)?;
            f.flush()
        })
        .map_err(|source| FolderError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a split file written by [`FolderDataset::write`].
    pub fn read(path: &Path) -> Result<FolderDataset, FolderError> {
        let invalid = |reason: String| FolderError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|source| FolderError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(invalid(
                "not a syncdraw video-folder data set (SDFV0001)".into(),
            ));
        }
        let len = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let json = bytes
            .get(16..16usize.saturating_add(len))
            .ok_or_else(|| invalid("truncated header".into()))?;
        let header: Header =
            serde_json::from_slice(json).map_err(|e| invalid(format!("header: {e}")))?;
        let data = FolderDataset {
            header,
            pixels: bytes[16 + len..].to_vec(),
        };
        if data.pixels.len() != data.len() * data.video_len() {
            return Err(invalid(format!(
                "{} pixel bytes for {} videos of {} bytes",
                data.pixels.len(),
                data.len(),
                data.video_len()
            )));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The captions of each split are those the split rule gives, every caption
    /// of the grammar is in one of them, and the list stops at the limit.
    #[test]
    fn grammar_captions_follow_the_split() {
        let g = crate::shapes::grammar();
        let train = grammar_captions(&g, Split::Train, usize::MAX);
        let test = grammar_captions(&g, Split::Test, usize::MAX);
        assert_eq!((train.len(), test.len()), (9, 9));
        for (split, list) in [(Split::Train, &train), (Split::Test, &test)] {
            for c in list {
                let objects = g.parse(c).expect("a caption of the grammar");
                assert_eq!(split_of(&g, &objects), split, "{c}");
            }
        }
        assert_eq!(test[0], "a red square is moving left and right");
        // Two digits: 20 x 20 combinations, half of them held out.
        let two = crate::bouncing::grammar(2);
        assert_eq!(grammar_captions(&two, Split::Test, usize::MAX).len(), 200);
        assert_eq!(grammar_captions(&two, Split::Test, 7).len(), 7);
        let one = crate::bouncing::grammar(1);
        let mut from_grammar = grammar_captions(&one, Split::Test, usize::MAX);
        let mut paper: Vec<String> = crate::bouncing::contents(1, Split::Test)
            .iter()
            .map(|c| c.caption())
            .collect();
        from_grammar.sort();
        paper.sort();
        assert_eq!(
            from_grammar, paper,
            "one digit: the paper's held-out captions"
        );
    }
}
