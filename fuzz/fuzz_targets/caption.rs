//! Any text as a caption, for the one- and two-digit grammars and the format-1
//! word vocabulary: never a panic; a caption that parses renders back to text that
//! parses to the same objects, and its ids are in range.
#![no_main]
use libfuzzer_sys::fuzz_target;
use syncdraw_format::{Grammar, Vocabulary};

fn grammar(objects: usize) -> Grammar {
    Grammar::bouncing_mnist(1, objects)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for g in [grammar(1), grammar(2)] {
        if let Ok(objects) = g.parse(&text) {
            let again = g.parse(&g.caption(&objects)).expect("a rendered caption parses");
            assert_eq!(again, objects);
            let ids = g.encode(&text).expect("parsed captions encode");
            assert_eq!(ids.len(), g.ids_len());
            for (i, id) in ids.iter().enumerate() {
                let values = g.slots[i % g.slots.len()].values.len() as i64;
                assert!((0..=values).contains(id), "id {id} out of range");
            }
        }
    }
    let vocab = Vocabulary::from_captions(["digit 3 is moving up and down"]);
    if let Ok(ids) = vocab.encode(&text, 7) {
        assert_eq!(ids.len(), 7);
    }
});
