//! The caption grammar: what is accepted, the ids it gives, and the errors for
//! everything else.
use syncdraw_format::{CaptionCodec, CaptionError, Grammar, Vocabulary};

fn mnist(objects: usize) -> Grammar {
    Grammar::bouncing_mnist(objects, objects)
}

#[test]
fn the_grammar_is_valid_and_describes_itself() {
    let g = mnist(1);
    g.validate().unwrap();
    assert_eq!(g.ids_len(), 2);
    assert_eq!(
        g.form(),
        "digit <0|1|2|3|4|5|6|7|8|9> is moving <up and down|left and right>"
    );
}

#[test]
fn every_caption_gives_its_slot_ids() {
    let g = mnist(1);
    for d in 0..10usize {
        for (m, words) in ["up and down", "left and right"].iter().enumerate() {
            let caption = format!("digit {d} is moving {words}");
            assert_eq!(
                g.encode(&caption).unwrap(),
                vec![d as i64 + 1, m as i64 + 1]
            );
            assert_eq!(
                g.caption(&[vec![d, m]]),
                caption,
                "caption() writes what parse reads"
            );
        }
    }
    let g2 = mnist(2);
    assert_eq!(
        g2.encode("digit 0 is moving up and down and digit 9 is moving left and right")
            .unwrap(),
        vec![1, 1, 10, 2]
    );
}

#[test]
fn case_spacing_and_punctuation_do_not_matter() {
    let g = mnist(1);
    let want = g.encode("digit 3 is moving up and down").unwrap();
    for caption in [
        "Digit 3 is moving UP and down",
        "  digit   3 is\tmoving up and down  ",
        "digit 3 is moving up and down.",
        "digit 3, is moving: up-and-down",
    ] {
        assert_eq!(g.encode(caption).unwrap(), want, "{caption:?}");
    }
}

#[test]
fn a_range_of_objects_pads_absent_objects_with_zero() {
    let mut g = mnist(2);
    g.min_objects = 1;
    assert_eq!(
        g.encode("digit 4 is moving left and right").unwrap(),
        vec![5, 2, 0, 0]
    );
}

fn err(g: &Grammar, caption: &str) -> (CaptionError, String) {
    let e = g.encode(caption).expect_err(caption);
    let text = e.to_string();
    // Every error shows the accepted form.
    assert!(text.contains("digit <0|1|2"), "{text}");
    (e, text)
}

#[test]
fn an_unknown_word_is_named_with_what_was_expected() {
    let g = mnist(1);
    let (e, text) = err(&g, "digit 3 is moving sideways");
    assert!(
        matches!(&e, CaptionError::UnexpectedWord { position: 5, word, .. } if word == "sideways"),
        "{e:?}"
    );
    assert!(text.contains("up and down, left and right"), "{text}");
    let (e, _) = err(&g, "digit three is moving up and down");
    assert!(
        matches!(&e, CaptionError::UnexpectedWord { position: 2, word, .. } if word == "three")
    );
    let (e, _) = err(&g, "number 3 is moving up and down");
    assert!(
        matches!(&e, CaptionError::UnexpectedWord { position: 1, word, .. } if word == "number")
    );
    let (e, _) = err(&g, "digit 3 is moving up and left");
    assert!(
        matches!(&e, CaptionError::UnexpectedWord { position: 5, .. }),
        "{e:?}"
    );
}

#[test]
fn a_missing_motion_says_what_must_follow() {
    let g = mnist(1);
    let (e, text) = err(&g, "digit 3");
    assert!(matches!(e, CaptionError::Incomplete { .. }), "{e:?}");
    assert!(text.contains("\"is\""), "{text}");
    let (e, text) = err(&g, "digit 3 is moving");
    assert!(matches!(e, CaptionError::Incomplete { .. }));
    assert!(
        text.contains("motion: up and down, left and right"),
        "{text}"
    );
    let (e, _) = err(&g, "digit 3 is moving up and");
    assert!(matches!(e, CaptionError::Incomplete { .. }), "{e:?}");
    let (e, _) = err(&g, "digit 3 is moving up and down and");
    assert!(matches!(e, CaptionError::Incomplete { .. }), "{e:?}");
}

#[test]
fn the_object_count_must_fit_the_model() {
    let two = "digit 1 is moving up and down and digit 2 is moving left and right";
    let three = format!("{two} and digit 3 is moving up and down");
    let (e, text) = err(&mnist(1), two);
    assert!(
        matches!(e, CaptionError::ObjectCount { found: 2, .. }),
        "{e:?}"
    );
    assert!(text.contains("exactly 1"), "{text}");
    let (e, _) = err(&mnist(2), &three);
    assert!(matches!(e, CaptionError::ObjectCount { found: 3, .. }));
    let (e, _) = err(&mnist(2), "digit 1 is moving up and down");
    assert!(matches!(e, CaptionError::ObjectCount { found: 1, .. }));
}

#[test]
fn empty_and_huge_captions_are_refused() {
    let g = mnist(1);
    for caption in ["", "   ", "...", "\n"] {
        assert!(
            matches!(err(&g, caption).0, CaptionError::Empty { .. }),
            "{caption:?}"
        );
    }
    let huge = "digit 3 is moving up and down ".repeat(350); // about 10 kB
    assert!(huge.len() > 10_000);
    let (e, text) = err(&g, &huge);
    assert!(matches!(e, CaptionError::TooLong { .. }), "{e:?}");
    assert!(text.contains("at most 1024"), "{text}");
}

#[test]
fn malformed_grammars_are_refused() {
    let mut g = mnist(1);
    g.object = "digit {digit} is moving".into();
    assert!(g.validate().unwrap_err().contains("motion"));
    let mut g = mnist(1);
    g.slots[1].values.push("Up".into());
    assert!(g.validate().is_err());
    let mut g = mnist(1);
    g.max_objects = 0;
    assert!(g.validate().is_err());
    let mut g = mnist(1);
    g.object = "digit {digit} is moving {motion} {colour}".into();
    assert!(g.validate().unwrap_err().contains("colour"));
}

#[test]
fn format_1_words_keep_working() {
    let v = Vocabulary::from_captions(["digit 0 is moving up and down"]);
    let codec = CaptionCodec::Words {
        vocabulary: v.clone(),
        length: 8,
    };
    let ids = codec.encode("Digit 0 is moving UP and down").unwrap();
    assert_eq!(ids.len(), 8);
    assert_eq!(ids[7], 0, "right-padded");
    match codec.encode("digit 0 is moving sideways").unwrap_err() {
        CaptionError::UnknownWords { unknown, .. } => assert_eq!(unknown, vec!["sideways"]),
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        v.encode("digit 0 is moving up and down and up", 7)
            .unwrap_err(),
        CaptionError::TooManyWords { .. }
    ));
}

/// The message docs/model-format.md shows is the one users get.
#[test]
fn the_documented_message_is_the_real_one() {
    let e = mnist(1).encode("digit 3 is moving sideways").unwrap_err();
    assert_eq!(
        e.to_string(),
        "caption \"digit 3 is moving sideways\": word 5 \"sideways\" is not what the grammar \
         expects here (motion: up and down, left and right); accepted: 1 of \"digit \
         <0|1|2|3|4|5|6|7|8|9> is moving <up and down|left and right>\" joined by \"and\", \
         for example \"digit 0 is moving up and down\""
    );
}
