//! The caption-fidelity evaluator on tiny data (CPU): labels decode to captions and
//! back, a briefly trained evaluator reads held-out real videos far above chance
//! and survives a save/load, fidelity runs end to end on a tiny Sync-DRAW model
//! (one entry per test caption, fractions in [0, 1]), and missing or mismatched
//! files give clear errors, through the library and the `syncdraw-train` CLI.
use rand::SeedableRng;
use std::process::Command;
use syncdraw_data::bouncing::image_pools;
use syncdraw_data::bouncing::{contents, grammar, split_of};
use syncdraw_data::{Content, Dataset, DatasetConfig, DigitSource, Digits, Motion, Pixels, Split};
use syncdraw_evaluator::labels::{self, canonical, compare};
use syncdraw_evaluator::net::parse_layers;
use syncdraw_evaluator::reading::{self, read, Grid, CLASSES};
use syncdraw_evaluator::render::render_frame;
use syncdraw_evaluator::train::{train, training_pools, Recipe, TrainOptions};
use syncdraw_evaluator::{
    real_test_split, Evaluator, EvaluatorConfig, EvaluatorError, EvaluatorMeta, TrainingInfo,
    FORMAT as EV_FORMAT,
};
use syncdraw_training::checkpoint::{self, Meta, FORMAT};
use syncdraw_training::fidelity::{draw, fidelity, FidelityError};
use syncdraw_training::model::{DecoderKind, DrawOrder, ModelConfig, SyncDraw, Variant};
use syncdraw_training::train::slots_config;
use tch::{Device, Kind, Tensor};

/// libtorch's random generator is global to the process: tests that seed it and
/// draw from it (training, initialising or sampling a model) run one at a time.
static TCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    TCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

const FRAMES: usize = 6;
const SIZE: usize = 40;

fn tiny_data(digits: usize) -> DatasetConfig {
    let mut c = DatasetConfig::new(digits);
    c.train_size = 64;
    c.test_size = 300;
    c.video.frames = FRAMES;
    c.video.size = SIZE;
    c
}

fn tiny_evaluator_config() -> EvaluatorConfig {
    let mut c = EvaluatorConfig::new(FRAMES as i64, SIZE as i64);
    c.layers = parse_layers("16k5s2,24k3s2,32k3s2,32k3,32k3").unwrap();
    // A coarse grid of 8-pixel cells; subcells are tested on their own.
    c.subcells = 1;
    c
}

fn untrained_evaluator(data: &DatasetConfig) -> Evaluator {
    let meta = EvaluatorMeta {
        format: EV_FORMAT.into(),
        config: tiny_evaluator_config(),
        data: data.clone(),
        training: TrainingInfo {
            recipe: Recipe {
                steps: 0,
                ..Default::default()
            },
            seconds: 0.0,
            device: "cpu".into(),
            threads: 1,
            extra_images: 0,
        },
        accuracy: Default::default(),
    };
    Evaluator::new(meta, Device::Cpu)
}

#[test]
fn captions_compare_as_unordered_multisets_of_pairs() {
    for digits in 1..=2 {
        for split in [Split::Train, Split::Test] {
            for content in contents(digits, split) {
                let mut reversed = content.clone();
                reversed.0.reverse();
                assert_eq!(canonical(&reversed), canonical(&content));
                assert!(compare(&reversed, &content).exact);
                if digits == 1 {
                    assert_eq!(canonical(&content).caption(), content.caption());
                }
            }
        }
    }
    let a = Content(vec![(3, Motion::UpDown), (1, Motion::LeftRight)]);
    let b = Content(vec![(1, Motion::LeftRight), (3, Motion::UpDown)]);
    assert_eq!(
        split_of(&a),
        split_of(&b),
        "the split does not depend on caption order"
    );
    assert_eq!(
        canonical(&a).caption(),
        "digit 1 is moving left and right and digit 3 is moving up and down"
    );
    let same_digit = Content(vec![(4, Motion::LeftRight), (4, Motion::UpDown)]);
    assert_eq!(
        canonical(&same_digit).0,
        vec![(4, Motion::UpDown), (4, Motion::LeftRight)],
        "up and down before left and right for the same digit"
    );
    assert!(compare(&a, &b).exact);
    // Same digits, motions bound the other way round: digits and motion multisets
    // match, the caption does not.
    let swapped = Content(vec![(3, Motion::LeftRight), (1, Motion::UpDown)]);
    let m = compare(&swapped, &a);
    assert!(!m.exact && m.digits && m.motion && m.count);
    let wrong_digit = Content(vec![(7, Motion::UpDown), (1, Motion::LeftRight)]);
    let m = compare(&wrong_digit, &a);
    assert!(!m.exact && !m.digits && m.motion && m.count);
    let same_twice = Content(vec![(4, Motion::UpDown), (4, Motion::UpDown)]);
    let m = compare(&Content(vec![(4, Motion::UpDown)]), &same_twice);
    assert!(!m.exact && !m.digits && !m.count);
}

/// An 8x8 grid of 8-pixel cells on 64x64 frames (coarser than the default
/// detector's 16x16 grid of 4-pixel cells; the reading works on any grid).
const G: Grid = Grid {
    cells: 8,
    scale: 8.0,
    offset: 0.0,
};

/// Detector maps of a video: per frame, the digits seen as (digit, row, column,
/// probability), each in the cell nearest its position; background elsewhere.
fn maps(frames: &[Vec<(u8, f32, f32, f32)>]) -> Vec<f32> {
    let g = G.cells;
    let mut out = Vec::new();
    for seen in frames {
        let mut m = vec![0.0f32; CLASSES * g * g];
        m[..g * g].fill(1.0);
        for &(d, y, x, p) in seen {
            let (r, c) = (G.cell_of(y), G.cell_of(x));
            m[r * g + c] = 1.0 - p;
            m[((d as usize + 1) * g + r) * g + c] = p;
        }
        out.extend(m);
    }
    out
}

#[test]
fn reading_counts_tracks_and_names_each_digit_and_its_motion() {
    // Digit 3 moves up and down in column 8 while 7 moves left and right in row 40.
    let rows = [8.0, 16.0, 24.0, 32.0, 40.0, 48.0, 56.0, 48.0, 40.0, 32.0];
    let cols = [32.0, 40.0, 48.0, 56.0, 48.0, 40.0, 32.0, 40.0, 48.0, 56.0];
    let video: Vec<_> = (0..10)
        .map(|f| vec![(3, rows[f], 8.0, 0.9), (7, 40.0, cols[f], 0.8)])
        .collect();
    assert_eq!(
        read(&maps(&video), G),
        Content(vec![(3, Motion::UpDown), (7, Motion::LeftRight)])
    );

    // One digit 5 moving left and right: a weak blob in every frame is not a
    // second digit, a sure one in a single frame is.
    let mut video: Vec<_> = (0..10)
        .map(|f| vec![(5, 24.0, cols[f], 0.95), (1, 56.0, 8.0, 0.3)])
        .collect();
    assert_eq!(
        read(&maps(&video), G),
        Content(vec![(5, Motion::LeftRight)])
    );
    video[4].push((9, 8.0, 56.0, 0.9));
    assert_eq!(read(&maps(&video), G).0.len(), 2);
    // Even an unsure detector reads one digit: the best cell of every frame.
    let video: Vec<_> = (0..10).map(|f| vec![(2, rows[f], 16.0, 0.2)]).collect();
    assert_eq!(read(&maps(&video), G), Content(vec![(2, Motion::UpDown)]));

    // Two 4s cross in the middle: they merge into one peak in frames 2-4 and 8-9,
    // and the tracks pick up on the far side where each was heading.
    let ud = [8.0, 16.0, 24.0, 32.0, 40.0, 48.0, 56.0, 48.0, 40.0, 32.0];
    let lr = [56.0, 48.0, 40.0, 32.0, 24.0, 16.0, 8.0, 16.0, 24.0, 32.0];
    let video: Vec<_> = (0..10)
        .map(|f| vec![(4, ud[f], 32.0, 0.9), (4, 32.0, lr[f], 0.9)])
        .collect();
    assert_eq!(
        read(&maps(&video), G),
        Content(vec![(4, Motion::UpDown), (4, Motion::LeftRight)])
    );
}

#[test]
fn training_frames_mark_each_digit_centre_with_its_class() {
    let data = tiny_data(1);
    let digits = Digits::load(&data.source).unwrap();
    let pools = image_pools(&digits, Split::Train, data.seed);
    let grid = tiny_evaluator_config().grid();
    assert_eq!(grid.cells, 5, "40 pixels, three stride-2 layers");
    let g = grid.cells;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for shown in [vec![3u8], vec![8, 0], vec![6, 6]] {
        for _ in 0..30 {
            let (frame, target) = render_frame(SIZE, grid, &digits, &pools, &shown, 1.0, &mut rng);
            assert_eq!((frame.len(), target.len()), (SIZE * SIZE, g * g));
            let mut marked: Vec<u8> = target
                .iter()
                .filter(|&&t| t > 0)
                .map(|&t| (t - 1) as u8)
                .collect();
            marked.sort();
            // Two digits centred in one cell leave one mark.
            assert!(
                marked.iter().all(|d| shown.contains(d)) && !marked.is_empty(),
                "{marked:?} for {shown:?}"
            );
            if marked.len() == shown.len() {
                let mut all = shown.clone();
                all.sort();
                assert_eq!(marked, all);
            }
            // Ink around every marked cell's centre.
            for (i, _) in target.iter().enumerate().filter(|(_, &t)| t > 0) {
                let (cy, cx) = (grid.centre(i / g) as usize, grid.centre(i % g) as usize);
                let ink: u32 = (cy.saturating_sub(10)..(cy + 10).min(SIZE))
                    .flat_map(|r| (cx.saturating_sub(10)..(cx + 10).min(SIZE)).map(move |c| (r, c)))
                    .map(|(r, c)| frame[r * SIZE + c] as u32)
                    .sum();
                assert!(ink > 1000, "a digit is drawn around cell {i}");
            }
        }
    }
}

#[test]
fn extra_digits_add_to_the_training_pool_but_never_bring_in_test_images() {
    let data = tiny_data(1);
    let digits = Digits::load(&data.source).unwrap();
    let test = image_pools(&digits, Split::Test, data.seed);
    let train_only = image_pools(&digits, Split::Train, data.seed);
    // Extra digits: every bundled image again (test images among them), and two
    // new ones, a blank 7 and a bright 2.
    let mut extra = digits.clone();
    extra.images.push([0; 784]);
    extra.labels.push(7);
    extra.images.push([200; 784]);
    extra.labels.push(2);
    let (merged, pools, added) = training_pools(&digits, Some(&extra), data.seed);
    assert_eq!(
        added, 2,
        "only the images not already in the data set's digits"
    );
    let test_images: std::collections::HashSet<&[u8; 784]> =
        test.iter().flatten().map(|&t| &digits.images[t]).collect();
    for d in 0..10 {
        let want = train_only[d].len() + usize::from(d == 7 || d == 2);
        assert_eq!(pools[d].len(), want, "digit {d}");
        for &i in &pools[d] {
            assert_eq!(merged.labels[i], d as u8);
            assert!(
                !test_images.contains(&merged.images[i]),
                "a test image of digit {d} would be trained on"
            );
        }
    }
    assert!(pools[7].iter().any(|&i| merged.images[i] == [0; 784]));
    assert!(pools[2].iter().any(|&i| merged.images[i] == [200; 784]));
    // Without extra digits the pools are the data set's train pools.
    let (_, same, none) = training_pools(&digits, None, data.seed);
    assert_eq!((same, none), (train_only, 0));
}

/// Writes `digits` as IDX image and label files in `dir`.
fn write_idx(dir: &std::path::Path, digits: &Digits) -> (std::path::PathBuf, std::path::PathBuf) {
    let n = (digits.images.len() as u32).to_be_bytes();
    let mut img = [
        &0x0803u32.to_be_bytes()[..],
        &n,
        &28u32.to_be_bytes(),
        &28u32.to_be_bytes(),
    ]
    .concat();
    img.extend(digits.images.iter().flatten());
    let mut lab = [&0x0801u32.to_be_bytes()[..], &n].concat();
    lab.extend(&digits.labels);
    let (i, l) = (dir.join("images-idx3-ubyte"), dir.join("labels-idx1-ubyte"));
    std::fs::write(&i, img).unwrap();
    std::fs::write(&l, lab).unwrap();
    (i, l)
}

#[test]
fn extra_digits_from_idx_files_are_used_and_recorded_and_a_missing_file_is_named() {
    let _rng = rng_lock();
    let data = tiny_data(1);
    let digits = Digits::load(&data.source).unwrap();
    // Two bundled images of every digit (skipped: already in the data set) and
    // one new 4.
    let mut extra = Digits {
        images: Vec::new(),
        labels: Vec::new(),
    };
    for d in 0..10u8 {
        for i in (0..digits.labels.len())
            .filter(|&i| digits.labels[i] == d)
            .take(2)
        {
            extra.images.push(digits.images[i]);
            extra.labels.push(d);
        }
    }
    extra.images.push([128; 784]);
    extra.labels.push(4);
    let dir = tempfile::tempdir().unwrap();
    let (images, labels) = write_idx(dir.path(), &extra);
    let source = DigitSource::Idx { images, labels };
    let mut opts = TrainOptions {
        recipe: Recipe {
            steps: 2,
            batch: 4,
            extra_digits: Some(source.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let ev = train(&tiny_evaluator_config(), &data, &digits, &opts, |_, _| {}).unwrap();
    assert_eq!(ev.meta.training.extra_images, 1);
    assert_eq!(ev.meta.training.recipe.extra_digits, Some(source));
    // The file records where the extra digits came from.
    let path = dir.path().join("ev.safetensors");
    ev.save(&path).unwrap();
    let back = Evaluator::load(&path, Device::Cpu).unwrap();
    assert_eq!(back.meta.training, ev.meta.training);

    let missing = dir.path().join("no-such-images");
    opts.recipe.extra_digits = Some(DigitSource::Idx {
        images: missing.clone(),
        labels: missing.clone(),
    });
    let err = train(&tiny_evaluator_config(), &data, &digits, &opts, |_, _| {})
        .err()
        .expect("missing extra digits are an error")
        .to_string();
    assert!(err.contains("no-such-images"), "{err}");
}

#[test]
fn subcells_make_the_grid_finer_and_the_network_fills_it() {
    let _rng = rng_lock();
    let mut c = EvaluatorConfig::new(10, 64);
    assert_eq!(c.subcells, 1, "the shipped evaluator's grid");
    let coarse = c.grid();
    assert_eq!((coarse.cells, coarse.scale, coarse.offset), (16, 4.0, 0.0));
    c.subcells = 2;
    let fine = c.grid();
    // A 4-pixel cell centred on 4j splits into 2-pixel cells centred on 4j -/+ 1.
    assert_eq!((fine.cells, fine.scale, fine.offset), (32, 2.0, -1.0));
    assert_eq!((fine.centre(10), fine.centre(11)), (19.0, 21.0));
    assert_eq!((fine.cell_of(19.4), fine.cell_of(20.6)), (10, 11));
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let net = syncdraw_evaluator::net::Net::new(&vs.root(), &c);
    let out = net.forward_t(
        &tch::Tensor::zeros([2, 1, 64, 64], (tch::Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(out.size(), vec![2, CLASSES as i64, 32, 32]);
    // The subcells of 4-pixel cell (i, j) are fine cells 2i..2i+1 x 2j..2j+1, where
    // grid.centre() puts them: moving the frame 4 pixels right moves the fine
    // maps exactly 2 cells right. Cells 6-9 see 49x49 pixels inside the frame, so
    // no padding spoils the comparison (a plain reshape instead of the pixel
    // shuffle would move them 1 cell within scrambled rows).
    tch::manual_seed(5);
    let x = tch::Tensor::rand([1, 1, 64, 64], (tch::Kind::Float, Device::Cpu));
    let moved = x.roll([4], [3]);
    let (a, b) = (net.forward_t(&x, false), net.forward_t(&moved, false));
    let inner = |t: &tch::Tensor, col: i64| t.narrow(2, 12, 8).narrow(3, col, 6);
    assert!(inner(&a, 12).allclose(&inner(&b, 14), 1e-5, 1e-5, false));
    assert!(!inner(&a, 12).allclose(&inner(&b, 13), 1e-5, 1e-5, false));
}

#[test]
fn briefly_trained_evaluator_reads_held_out_real_videos_and_survives_save_load() {
    let _rng = rng_lock();
    tch::set_num_threads(2);
    let data = tiny_data(1);
    let digits = Digits::load(&data.source).unwrap();
    let opts = TrainOptions {
        recipe: Recipe {
            // 500 steps of 32 frames (a few seconds): seeds 1 and 3 read about
            // 96 % of the held-out test videos exactly.
            steps: 500,
            batch: 32,
            seed: 3,
            lr: 4e-3,
            one_digit_fraction: 1.0,
            ..Default::default()
        },
        log_every: 50,
        ..Default::default()
    };
    let mut losses = Vec::new();
    let ev = train(&tiny_evaluator_config(), &data, &digits, &opts, |_, l| {
        losses.push(l)
    })
    .unwrap();
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.7),
        "loss fell: {losses:?}"
    );
    // Real test videos: held-out images and held-out digit/motion combinations.
    let test = Dataset::generate(&data, &digits, Split::Test).unwrap();
    let score = ev.score(&test, None).unwrap();
    eprintln!(
        "tiny evaluator on {} real test videos: {score:?}",
        test.len()
    );
    // Chance: 1/20 for the caption, 1/10 for the digit, 1/2 for the motion.
    assert!(score.exact > 0.8, "{score:?}");
    assert!(score.digits > 0.8, "{score:?}");
    assert!(score.motion > 0.95, "{score:?}");
    assert_eq!(score.videos, test.len());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ev.safetensors");
    ev.save(&path).unwrap();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "no temporary file is left behind"
    );
    let back = Evaluator::load(&path, Device::Cpu).unwrap();
    assert_eq!(back.meta.config, ev.meta.config);
    assert_eq!(back.score(&test, None).unwrap(), score);

    // Every misread video is listed, with what it shows and what was read.
    let a = back.assess(&test, None).unwrap();
    // Every digit image shown is read in each frame of every video showing it
    // (one digit: always clear), mostly as its own digit.
    let shown: std::collections::BTreeSet<usize> =
        test.videos.iter().map(|v| v.tracks[0].image).collect();
    assert_eq!(
        a.images
            .keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        shown
    );
    let (mut frames, mut right) = (0, 0);
    for (image, r) in &a.images {
        assert_eq!(r.digit, digits.labels[*image]);
        assert_eq!(r.frames, r.videos * FRAMES);
        assert_eq!(r.read.iter().sum::<usize>(), r.frames);
        assert_eq!(r.read[r.digit as usize], r.right);
        (frames, right) = (frames + r.frames, right + r.right);
    }
    assert_eq!(frames, test.len() * FRAMES);
    assert!(
        right as f64 > 0.85 * frames as f64,
        "{right} of {frames} frames"
    );
    assert_eq!(a.all, score);
    assert!(a.apart.is_none(), "one-digit videos have no separation");
    let wrong = test.len() - (score.exact * test.len() as f64).round() as usize;
    assert_eq!(a.misread.len(), wrong);
    for m in &a.misread {
        assert_eq!(m.caption, test.videos[m.index].caption);
        assert_ne!(m.read, m.caption);
        assert!(!m.matched.exact);
    }
    // The CLI writes the same list, and reports the same accuracy.
    let cache = tempfile::tempdir().unwrap();
    let misread = dir.path().join("misread.json");
    let out = cli(&[
        "evaluator",
        "accuracy",
        "--evaluator",
        path.to_str().unwrap(),
        "--digits",
        "1",
        "--misread",
        misread.to_str().unwrap(),
        "--cache-dir",
        cache.path().to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["accuracy"]["1_digit_test"]["exact"], score.exact);
    // The image summary counts the misread images, the CLI prints it, and the
    // --misread file lists those images.
    let summary = &a.image_summary;
    let hard = a.images.values().filter(|r| r.misread()).count();
    assert_eq!(
        (summary.images, summary.misread_images),
        (a.images.len(), hard)
    );
    assert!(summary.of_which_misread <= summary.videos_showing_one);
    assert!(summary.videos_showing_one >= hard && summary.videos_showing_one <= test.len());
    assert_eq!(
        printed["accuracy"]["1_digit_test_images"],
        serde_json::to_value(summary).unwrap()
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&misread).unwrap()).unwrap();
    assert_eq!(
        listed["1_digit_test_images"].as_array().unwrap().len(),
        hard
    );
    let listed = listed["1_digit_test"].as_array().unwrap();
    assert_eq!(listed.len(), wrong);
    if let Some(first) = a.misread.first() {
        assert_eq!(listed[0]["index"], first.index);
        assert_eq!(listed[0]["read"], first.read.as_str());
    }
}

/// The evaluator reads the real test split grey, or binarised as a `--binarize`
/// model's test NLL sees it (`evaluator accuracy --binarize`): the same videos,
/// every pixel 0 or 255, black and white where the grey video is, and a sample
/// of the grey edges in between.
#[test]
fn the_real_test_split_is_read_grey_or_binarised() {
    let data = tiny_data(1);
    let cache = tempfile::tempdir().unwrap();
    let grey = real_test_split(&data, 1, Some(40), Pixels::Grey, cache.path()).unwrap();
    let bin = real_test_split(&data, 1, Some(40), Pixels::Binarized, cache.path()).unwrap();
    assert_eq!((grey.len(), bin.len()), (40, 40));
    for (g, b) in grey.videos.iter().zip(&bin.videos) {
        assert_eq!(g.tracks, b.tracks);
    }
    assert_eq!(grey.pixels.len(), bin.pixels.len());
    let (mut edges, mut edges_on) = (0usize, 0usize);
    for (&g, &b) in grey.pixels.iter().zip(&bin.pixels) {
        assert!(b == 0 || b == 255, "binarised pixel {b}");
        match g {
            0 | 255 => assert_eq!(b, g),
            _ => {
                edges += 1;
                edges_on += usize::from(b == 255);
            }
        }
    }
    assert!(edges > 1000, "{edges} grey edge pixels");
    assert!(
        0 < edges_on && edges_on < edges,
        "{edges_on} of {edges} edges on"
    );
}

#[test]
fn two_digit_accuracy_is_also_reported_for_digits_that_get_apart() {
    let _rng = rng_lock();
    let data = tiny_data(2);
    let digits = Digits::load(&data.source).unwrap();
    let test = Dataset::generate(&data, &digits, Split::Test).unwrap();
    let a = untrained_evaluator(&data).assess(&test, None).unwrap();
    let apart = a.apart.expect("two-digit data has the apart subset");
    let expected = test
        .videos
        .iter()
        .filter(|v| labels::separation(&v.tracks).unwrap() >= labels::APART_PIXELS)
        .count();
    assert!(0 < expected && expected < test.len(), "{expected}");
    assert_eq!(apart.videos, expected);
    assert_eq!(a.all.videos, test.len());
    for m in &a.misread {
        assert_eq!(
            m.separation,
            labels::separation(&test.videos[m.index].tracks)
        );
    }
}

#[test]
fn separation_is_how_far_apart_two_digits_get() {
    use syncdraw_data::Track;
    let track = |positions: Vec<(u16, u16)>| Track {
        digit: 1,
        motion: Motion::UpDown,
        image: 0,
        positions,
    };
    let a = track(vec![(0, 0), (7, 0), (14, 0)]);
    // Frame 0: 3 rows and 2 columns apart (3); frame 1: 4 and 2 (4); frame 2: 1 and 20 (20).
    let b = track(vec![(3, 2), (3, 2), (15, 20)]);
    assert_eq!(labels::separation(&[a.clone(), b.clone()]), Some(20));
    assert_eq!(labels::separation(std::slice::from_ref(&a)), None);
    // Two digits stacked all video long never get APART_PIXELS apart.
    let c = track(vec![(2, 1), (9, 1), (16, 3)]);
    let s = labels::separation(&[a.clone(), c]).unwrap();
    assert!(s < labels::APART_PIXELS, "{s}");
    // A digit stands clear of the other in frames where they are CLEAR_PIXELS apart.
    let d = track(vec![(0, 13), (0, 14), (30, 0)]);
    let both = [a.clone(), d];
    assert_eq!(labels::clear_frames(&both, 0), vec![1, 2]);
    assert_eq!(labels::clear_frames(&both, 1), vec![1, 2]);
    assert_eq!(
        labels::clear_frames(&[a], 0),
        vec![0, 1, 2],
        "alone: always clear"
    );
}

#[test]
fn the_digit_at_a_place_is_read_from_the_cells_around_it() {
    // A 3 at (20, 20) and a 7 at (44, 44), both sure; a faint 9 at (20, 44).
    let m = maps(&[vec![
        (3, 20.0, 20.0, 0.9),
        (7, 44.0, 44.0, 0.9),
        (9, 20.0, 44.0, 0.3),
    ]]);
    assert_eq!(reading::digit_at(&m, G, 20.0, 20.0), 3);
    assert_eq!(
        reading::digit_at(&m, G, 22.5, 18.0),
        3,
        "within a cell of the peak"
    );
    assert_eq!(reading::digit_at(&m, G, 44.0, 44.0), 7);
    assert_eq!(reading::digit_at(&m, G, 20.0, 44.0), 9);
}

fn tiny_model(data: &DatasetConfig, captions: bool) -> (SyncDraw, Meta) {
    let g = captions.then(|| grammar(data.digits));
    let config = ModelConfig {
        encoder_caption: true,
        variant: Variant::Syncdraw,
        frames: FRAMES as i64,
        channels: 1,
        height: SIZE as i64,
        width: SIZE as i64,
        timesteps: 2,
        read_k: 3,
        write_k: 3,
        enc_size: 16,
        dec_size: 16,
        z_dim: 4,
        caption: g.as_ref().map(slots_config),
        decoder: DecoderKind::WhatWhere,
        bounded_windows: true,
        forget_bias: 0.0,
        canvas_init: None,
        draw_order: DrawOrder::Together,
        objects: None,
        stable_filterbank: false,
        temporal_k: None,
    };
    // Through JSON, so fields added to Meta later with serde defaults need no edit here.
    let meta: Meta = serde_json::from_value(serde_json::json!({
        "format": FORMAT,
        "model": config,
        "vocabulary": null,
        "grammar": g,
        "dataset": data,
        "step": 0,
        "seed": 1,
        "test_nll": null,
    }))
    .unwrap();
    tch::manual_seed(5);
    (SyncDraw::new(&config, Device::Cpu), meta)
}

#[test]
fn fidelity_scores_every_test_caption() {
    let _rng = rng_lock();
    for digits in 1..=2 {
        let data = tiny_data(digits);
        let (model, meta) = tiny_model(&data, true);
        let ev = untrained_evaluator(&data);
        let r = fidelity(&model, &meta, &ev, Split::Test, 2, 7, 1.0).unwrap();
        let tests = contents(digits, Split::Test);
        assert!(r.captions);
        assert_eq!(
            r.per_caption.len(),
            tests.len(),
            "one entry per test caption"
        );
        for (entry, content) in r.per_caption.iter().zip(&tests) {
            assert_eq!(entry.caption, content.caption());
            assert_eq!(entry.score.videos, 2);
            for f in [
                entry.score.exact,
                entry.score.digits,
                entry.score.motion,
                entry.score.count,
            ] {
                assert!((0.0..=1.0).contains(&f), "{entry:?}");
            }
        }
        assert_eq!(r.overall.videos, 2 * tests.len());
        assert!(
            (0.0..=1.0).contains(&r.overall.exact) && (0.0..=1.0).contains(&r.mean_caption_exact)
        );
        // Same seed, same videos, same report.
        let again = fidelity(&model, &meta, &ev, Split::Test, 2, 7, 1.0).unwrap();
        assert_eq!(again.overall, r.overall);
        // For comparison, the training captions: one entry for each of them.
        let seen = fidelity(&model, &meta, &ev, Split::Train, 1, 7, 1.0).unwrap();
        let train: Vec<String> = contents(digits, Split::Train)
            .iter()
            .map(Content::caption)
            .collect();
        let got: Vec<&String> = seen.per_caption.iter().map(|c| &c.caption).collect();
        assert_eq!(got, train.iter().collect::<Vec<_>>());
    }
}

/// The videos fidelity scores are drawn at its temperature: at 0 (z = 0) every
/// draw is the same video whatever the seed, and it is the model's video for
/// z = 0; at 1 two seeds draw different videos, and at 0.5 the latents are the
/// same draw halved.
#[test]
fn fidelity_draws_at_its_temperature() {
    let _rng = rng_lock();
    let data = tiny_data(1);
    let (model, _) = tiny_model(&data, true);
    let c = &model.config;
    let ids = Tensor::from_slice(&[3i64, 1])
        .reshape([1, 2])
        .repeat([2, 1]);
    let at = |seed: i64, t: f64| {
        tch::manual_seed(seed);
        draw(&model, 2, Some(&ids), t)
    };
    let z0 = Tensor::zeros([2, c.timesteps, c.z_dim], (Kind::Float, Device::Cpu));
    let (still, _) = tch::no_grad(|| model.generate(&z0, Some(&ids)));
    assert!(
        at(1, 0.0).equal(&at(2, 0.0)),
        "temperature 0 ignores the seed"
    );
    assert!(at(1, 0.0).equal(&still), "temperature 0 draws z = 0");
    assert!(!at(1, 1.0).equal(&at(2, 1.0)), "two seeds at temperature 1");
    tch::manual_seed(1);
    let z = Tensor::randn([2, c.timesteps, c.z_dim], (Kind::Float, Device::Cpu)) * 0.5;
    let (half, _) = tch::no_grad(|| model.generate(&z, Some(&ids)));
    let d = (at(1, 0.5) - half).abs().max().double_value(&[]);
    assert!(d < 1e-6, "temperature 0.5 differs from z / 2 by {d}");
    // An unconditional model is sampled from the prior; only the digit count is scored.
    let data = tiny_data(2);
    let (model, meta) = tiny_model(&data, false);
    let r = fidelity(
        &model,
        &meta,
        &untrained_evaluator(&data),
        Split::Test,
        1,
        7,
        1.0,
    )
    .unwrap();
    assert!(!r.captions && r.per_caption.is_empty());
    assert_eq!(r.overall.videos, contents(2, Split::Test).len());
    assert!((0.0..=1.0).contains(&r.overall.count));
}

#[test]
fn evaluator_for_other_videos_is_refused() {
    let _rng = rng_lock();
    let data = tiny_data(1);
    let (model, meta) = tiny_model(&data, true);
    let mut other = data.clone();
    other.video.size = 48;
    let mut ev = untrained_evaluator(&other);
    ev.meta.config.size = 48;
    let ev = Evaluator::new(ev.meta.clone(), Device::Cpu);
    let err = fidelity(&model, &meta, &ev, Split::Test, 1, 1, 1.0).expect_err("shape mismatch");
    assert!(
        matches!(err, FidelityError::Evaluator(EvaluatorError::Shape { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("6 frames of 48x48"), "{err}");
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_syncdraw-train"))
        .args(args)
        .output()
        .expect("runs syncdraw-train")
}

#[test]
fn missing_evaluator_is_a_clear_error() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let err = Evaluator::load(&missing, Device::Cpu)
        .err()
        .expect("missing file");
    assert!(matches!(err, EvaluatorError::Missing { .. }));
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(err.to_string().contains("evaluator train"), "{err}");

    let out = cli(&[
        "evaluator",
        "accuracy",
        "--evaluator",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");

    // A file that is not an evaluator (a model checkpoint) is named as such.
    let data = tiny_data(1);
    let (model, meta) = tiny_model(&data, true);
    let ck = dir.path().join("model.safetensors");
    checkpoint::save(&ck, &model, None, &meta).unwrap();
    let err = Evaluator::load(&ck, Device::Cpu)
        .err()
        .expect("not an evaluator");
    assert!(
        err.to_string().contains("not a syncdraw evaluator"),
        "{err}"
    );

    // An evaluator of the older format (a whole-video classifier) is refused by name.
    let old = dir.path().join("old.safetensors");
    let meta = br#"{"format":"syncdraw-evaluator-1","config":{"frames":10}}"#;
    tch::Tensor::write_safetensors(&[("meta.json", tch::Tensor::from_slice(meta))], &old).unwrap();
    let err = Evaluator::load(&old, Device::Cpu)
        .err()
        .expect("old format");
    let msg = err.to_string();
    assert!(
        msg.contains("syncdraw-evaluator-1") && msg.contains("evaluator train"),
        "{msg}"
    );
}

#[test]
fn fidelity_cli_prints_one_entry_per_test_caption() {
    let _rng = rng_lock();
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(1);
    let (model, meta) = tiny_model(&data, true);
    let ck = dir.path().join("model.safetensors");
    checkpoint::save(&ck, &model, None, &meta).unwrap();
    let ev_path = dir.path().join("ev.safetensors");
    untrained_evaluator(&data).save(&ev_path).unwrap();
    let out = cli(&[
        "fidelity",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--evaluator",
        ev_path.to_str().unwrap(),
        "--videos-per-caption",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let per = json["per_caption"].as_array().unwrap();
    assert_eq!(per.len(), contents(1, Split::Test).len());
    assert_eq!(
        (json["split"].as_str(), &json["captions"]),
        (Some("test"), &per.len().into())
    );
    for key in ["exact", "digits", "motion"] {
        let f = json["overall"][key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f), "{json}");
    }
    assert_eq!(json["overall"]["videos"], 3 * per.len());
}
