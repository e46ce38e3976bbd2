//! The caption grammar of format-2 models.
//!
//! A caption describes one or more objects, joined by a joiner word ("and"). Every
//! object follows one template of literal words and slots, for Bouncing MNIST
//! `digit {digit} is moving {motion}`; each slot takes one of a fixed list of
//! phrases ("3"; "up and down"). The parse is one id per slot per object, in
//! caption order: the 1-based index of the phrase in the slot's list, and 0 for
//! the slots of objects the caption does not have. A model conditions on these ids
//! through one embedding table per slot (docs/architecture.md), so what each slot
//! means is learnt separately and any combination of phrases can be asked for.
use crate::words::{check_size, words};
use crate::CaptionError;
use serde::{Deserialize, Serialize};

/// What a slot controls in the drawing: the object's appearance or its motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// What is drawn (digit, shape, colour): conditions the write patch.
    What,
    /// Where it is drawn over the frames (motion): conditions the write window.
    Where,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub name: String,
    pub role: Role,
    /// The phrases the slot accepts, lowercase words separated by one space.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grammar {
    /// One object's words, slots written `{name}`.
    pub object: String,
    /// The word between two objects.
    pub joiner: String,
    pub min_objects: usize,
    pub max_objects: usize,
    /// In template order.
    pub slots: Vec<Slot>,
}

enum Part {
    Word(String),
    Slot(usize),
}

impl Grammar {
    /// The grammar of captioned Bouncing MNIST (the paper's §4.2): "digit
    /// {digit} is moving {motion}" per digit, joined by "and", for
    /// `min_objects..=max_objects` digits; the digit (0-9) says what is drawn, the
    /// motion ("up and down", then "left and right") where.
    pub fn bouncing_mnist(min_objects: usize, max_objects: usize) -> Self {
        Grammar {
            object: "digit {digit} is moving {motion}".into(),
            joiner: "and".into(),
            min_objects,
            max_objects,
            slots: vec![
                Slot {
                    name: "digit".into(),
                    role: Role::What,
                    values: (0..10).map(|d| d.to_string()).collect(),
                },
                Slot {
                    name: "motion".into(),
                    role: Role::Where,
                    values: vec!["up and down".into(), "left and right".into()],
                },
            ],
        }
    }

    /// Checks that the grammar is well formed: every slot used once in the
    /// template, phrases in tokenizer form, object counts sensible.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_objects == 0 || self.max_objects < self.min_objects {
            return Err(format!(
                "objects must satisfy 1 <= min ({}) <= max ({})",
                self.min_objects, self.max_objects
            ));
        }
        if words(&self.joiner) != [self.joiner.clone()] {
            return Err(format!(
                "joiner {:?} must be one lowercase word",
                self.joiner
            ));
        }
        let parts = self.parts()?;
        for (i, slot) in self.slots.iter().enumerate() {
            let uses = parts
                .iter()
                .filter(|p| matches!(p, Part::Slot(j) if *j == i))
                .count();
            if uses != 1 {
                return Err(format!(
                    "slot {:?} appears {uses} times in the template {:?}",
                    slot.name, self.object
                ));
            }
            if slot.values.is_empty() {
                return Err(format!("slot {:?} has no values", slot.name));
            }
            for (k, v) in slot.values.iter().enumerate() {
                if words(v).join(" ") != *v {
                    return Err(format!(
                        "value {v:?} of slot {:?} is not lowercase words separated by single spaces",
                        slot.name
                    ));
                }
                if slot.values[..k].contains(v) {
                    return Err(format!(
                        "value {v:?} of slot {:?} is listed twice",
                        slot.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn parts(&self) -> Result<Vec<Part>, String> {
        self.object
            .split_whitespace()
            .map(
                |w| match w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    Some(name) => self
                        .slots
                        .iter()
                        .position(|s| s.name == name)
                        .map(Part::Slot)
                        .ok_or_else(|| format!("template slot {{{name}}} is not declared")),
                    None if words(w) == [w.to_string()] => Ok(Part::Word(w.to_string())),
                    None => Err(format!("template word {w:?} is not in tokenizer form")),
                },
            )
            .collect()
    }

    /// Ids per caption: one per slot per object, for `max_objects` objects.
    pub fn ids_len(&self) -> usize {
        self.max_objects * self.slots.len()
    }

    /// The template with every slot's values spelled out.
    pub fn form(&self) -> String {
        self.object
            .split_whitespace()
            .map(|w| {
                match w
                    .strip_prefix('{')
                    .and_then(|w| w.strip_suffix('}'))
                    .and_then(|n| self.slots.iter().find(|s| s.name == n))
                {
                    Some(s) => format!("<{}>", s.values.join("|")),
                    None => w.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What this grammar accepts, for error messages.
    pub fn accepted(&self) -> String {
        let count = if self.min_objects == self.max_objects {
            format!("{}", self.min_objects)
        } else {
            format!("{} to {}", self.min_objects, self.max_objects)
        };
        let example = self.caption(&vec![vec![0; self.slots.len()]; self.min_objects]);
        format!(
            "accepted: {count} of \"{}\" joined by \"{}\", for example \"{example}\"",
            self.form(),
            self.joiner
        )
    }

    /// The caption of objects given as 0-based value indices per slot.
    pub fn caption(&self, objects: &[Vec<usize>]) -> String {
        let parts = self.parts().unwrap_or_default();
        objects
            .iter()
            .map(|o| {
                parts
                    .iter()
                    .map(|p| match p {
                        Part::Word(w) => w.clone(),
                        Part::Slot(i) => self.slots[*i].values[o[*i]].clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(&format!(" {} ", self.joiner))
    }

    /// Parses a caption into objects, each the 0-based value index of every slot.
    pub fn parse(&self, caption: &str) -> Result<Vec<Vec<usize>>, CaptionError> {
        check_size(caption, || self.accepted())?;
        let parts = self.parts().map_err(|reason| CaptionError::Incomplete {
            caption: caption.into(),
            expected: format!("a valid grammar ({reason})"),
            accepted: String::new(),
        })?;
        let ws = words(caption);
        if ws.is_empty() {
            return Err(CaptionError::Empty {
                accepted: self.accepted(),
            });
        }
        let unexpected = |pos: usize, expected: String| CaptionError::UnexpectedWord {
            caption: caption.into(),
            position: pos + 1,
            word: ws[pos].clone(),
            expected,
            accepted: self.accepted(),
        };
        let incomplete = |expected: String| CaptionError::Incomplete {
            caption: caption.into(),
            expected,
            accepted: self.accepted(),
        };
        let mut objects = Vec::new();
        let mut pos = 0;
        loop {
            let mut object = vec![0; self.slots.len()];
            for part in &parts {
                match part {
                    Part::Word(w) => match ws.get(pos) {
                        Some(got) if got == w => pos += 1,
                        Some(_) => return Err(unexpected(pos, format!("\"{w}\""))),
                        None => return Err(incomplete(format!("\"{w}\""))),
                    },
                    Part::Slot(i) => {
                        let slot = &self.slots[*i];
                        let expected = || format!("{}: {}", slot.name, slot.values.join(", "));
                        if pos >= ws.len() {
                            return Err(incomplete(expected()));
                        }
                        // The longest phrase that matches here.
                        let hit = slot
                            .values
                            .iter()
                            .enumerate()
                            .filter(|(_, v)| {
                                let vw: Vec<&str> = v.split(' ').collect();
                                ws.len() >= pos + vw.len()
                                    && ws[pos..pos + vw.len()].iter().zip(&vw).all(|(a, b)| a == b)
                            })
                            .max_by_key(|(_, v)| v.split(' ').count());
                        match hit {
                            Some((k, v)) => {
                                object[*i] = k;
                                pos += v.split(' ').count();
                            }
                            None => {
                                // A phrase cut short by the end of the caption.
                                let prefix = slot.values.iter().any(|v| {
                                    let vw: Vec<&str> = v.split(' ').collect();
                                    vw.len() > ws.len() - pos
                                        && ws[pos..].iter().zip(&vw).all(|(a, b)| a == b)
                                });
                                return Err(if prefix {
                                    incomplete(expected())
                                } else {
                                    unexpected(pos, expected())
                                });
                            }
                        }
                    }
                }
            }
            objects.push(object);
            match ws.get(pos) {
                None => break,
                Some(w) if *w == self.joiner => {
                    pos += 1;
                    if pos == ws.len() {
                        return Err(incomplete("another object after the joiner".into()));
                    }
                }
                Some(_) => {
                    return Err(unexpected(
                        pos,
                        format!("\"{}\" or the end of the caption", self.joiner),
                    ))
                }
            }
        }
        if objects.len() < self.min_objects || objects.len() > self.max_objects {
            let wanted = if self.min_objects == self.max_objects {
                format!("exactly {}", self.min_objects)
            } else {
                format!("{} to {}", self.min_objects, self.max_objects)
            };
            return Err(CaptionError::ObjectCount {
                caption: caption.into(),
                found: objects.len(),
                wanted,
                accepted: self.accepted(),
            });
        }
        Ok(objects)
    }

    /// The model's caption ids: per object and slot, the value index + 1; 0 for
    /// the slots of absent objects. Length [`Grammar::ids_len`].
    pub fn encode(&self, caption: &str) -> Result<Vec<i64>, CaptionError> {
        let objects = self.parse(caption)?;
        let mut ids = vec![0i64; self.ids_len()];
        for (o, object) in objects.iter().enumerate() {
            for (s, &k) in object.iter().enumerate() {
                ids[o * self.slots.len() + s] = k as i64 + 1;
            }
        }
        Ok(ids)
    }
}
