//! The caption encoder: S in eq. 11-13.
//!
//! The paper uses pre-trained skip-thought vectors (eq. 11). Those cannot be had
//! here, so S comes from a small encoder trained jointly with the model, in one of
//! two forms:
//!
//! - **slots** (format 2): the caption is parsed by its grammar
//!   (syncdraw_format::Grammar) into one id per slot (digit, motion) per object;
//!   every slot kind has its own embedding table and S is the embeddings
//!   concatenated in caption order. A digit's embedding is the same whatever motion
//!   it is captioned with, so unseen combinations are made of seen parts, and the
//!   decoder can be given only the slots of one role ([`CaptionFeatures::role`]).
//! - **words** (format 1): word embeddings read by an LSTM in caption order, S =
//!   its last hidden state; padding (id 0) leaves the state unchanged. It learns
//!   each caption of the training split as a whole (docs/results.md).
use super::config::{CaptionConfig, Role, SlotsConfig, WordsConfig};
use super::layers::{Lstm, LstmParams, LstmState};
use crate::backend::Backend;
use tch::{nn, Tensor};

pub const PAD_ID: i64 = 0;

pub enum CaptionEncoderParams {
    Slots {
        config: SlotsConfig,
        /// One table per slot kind, [values + 1, E]; row 0 is an absent object.
        tables: Vec<Tensor>,
    },
    Words {
        config: WordsConfig,
        embedding: Tensor,
        lstm: LstmParams,
    },
}

pub enum CaptionEncoder<T> {
    Slots {
        config: SlotsConfig,
        tables: Vec<T>,
    },
    Words {
        config: WordsConfig,
        embedding: T,
        lstm: Lstm<T>,
    },
}

/// S, and for slot encoders the part of S each role conditions.
pub struct CaptionFeatures<T> {
    /// S: every slot of every object (slots), or the LSTM state (words).
    pub all: T,
    /// [S_where, S_what] for slot encoders.
    pub by_role: Option<[T; 2]>,
    /// Per object, in caption order: [its slots, its where slots, its what
    /// slots] (slot encoders, when objects are drawn in turn).
    pub per_object: Option<Vec<[T; 3]>>,
}

impl<T> CaptionFeatures<T> {
    /// The features a decoder LSTM of this role reads: its slots, or S whole when
    /// the encoder has no slots.
    pub fn role(&self, role: Role) -> &T {
        match (&self.by_role, role) {
            (Some([w, _]), Role::Where) => w,
            (Some([_, w]), Role::What) => w,
            (None, _) => &self.all,
        }
    }

    /// The features a decoder LSTM of `role` (None: joint) reads at a step
    /// that draws `object` alone (objects drawn in turn), or every object
    /// (None): [`Self::object`], or [`Self::role`] or S whole.
    pub fn read_by(&self, role: Option<Role>, object: Option<i64>) -> &T {
        match (object, role) {
            (Some(o), _) => self.object(o, role),
            (None, Some(r)) => self.role(r),
            (None, None) => &self.all,
        }
    }

    /// The features of object `o` alone that a decoder LSTM of `role` reads
    /// (None: every slot of the object).
    ///
    /// # Panics
    /// If the features were encoded without `per_object` (a model whose objects
    /// are not drawn in turn), or `o` is not an object of the caption.
    pub fn object(&self, o: i64, role: Option<Role>) -> &T {
        let parts = &self
            .per_object
            .as_ref()
            .expect("caption features encoded per object")[o as usize];
        match role {
            None => &parts[0],
            Some(Role::Where) => &parts[1],
            Some(Role::What) => &parts[2],
        }
    }
}

fn randn(p: &nn::Path, name: &str, shape: &[i64]) -> Tensor {
    p.var(
        name,
        shape,
        nn::Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        },
    )
}

impl CaptionEncoderParams {
    pub fn new(p: &nn::Path, config: &CaptionConfig) -> Self {
        match config {
            CaptionConfig::Slots(c) => Self::Slots {
                config: c.clone(),
                tables: c
                    .slots
                    .iter()
                    .map(|k| {
                        randn(
                            p,
                            &format!("slot_{}", k.name),
                            &[k.values + 1, c.embed_size],
                        )
                    })
                    .collect(),
            },
            CaptionConfig::Words(c) => Self::Words {
                config: c.clone(),
                embedding: randn(p, "embedding", &[c.vocab_size, c.embed_size]),
                // The format-1 caption LSTM keeps the paper's zero forget bias.
                lstm: LstmParams::new(&(p / "lstm"), c.embed_size, c.hidden_size, 0.0),
            },
        }
    }

    pub fn bind<B: Backend>(&self, be: &mut B) -> CaptionEncoder<B::Tensor> {
        match self {
            Self::Slots { config, tables } => CaptionEncoder::Slots {
                config: config.clone(),
                tables: config
                    .slots
                    .iter()
                    .zip(tables)
                    .map(|(k, t)| be.param(&format!("caption.slot_{}", k.name), t))
                    .collect(),
            },
            Self::Words {
                config,
                embedding,
                lstm,
            } => CaptionEncoder::Words {
                config: config.clone(),
                embedding: be.param("caption.embedding", embedding),
                lstm: lstm.bind(be),
            },
        }
    }
}

impl<T> CaptionEncoder<T> {
    /// S for int64 caption ids [B, L]; with `by_role`, also its part per role,
    /// with `per_object` the parts of each object (slot encoders only).
    pub fn encode<B: Backend<Tensor = T>>(
        &self,
        be: &mut B,
        ids: &T,
        by_role: bool,
        per_object: bool,
    ) -> CaptionFeatures<T> {
        match self {
            CaptionEncoder::Slots { config, tables } => {
                encode_slots(be, config, tables, ids, by_role, per_object)
            }
            CaptionEncoder::Words {
                config,
                embedding,
                lstm,
            } => CaptionFeatures {
                all: encode_words(be, config, embedding, lstm, ids),
                by_role: None,
                per_object: None,
            },
        }
    }
}

/// Slot ids [B, objects * slots] -> embeddings concatenated in caption order.
fn encode_slots<B: Backend>(
    be: &mut B,
    config: &SlotsConfig,
    tables: &[B::Tensor],
    ids: &B::Tensor,
    split: bool,
    per_object: bool,
) -> CaptionFeatures<B::Tensor> {
    let e = config.embed_size;
    let n = config.slots.len();
    let mut all = Vec::new();
    let (mut wheres, mut whats) = (Vec::new(), Vec::new());
    for o in 0..config.objects {
        for (s, kind) in config.slots.iter().enumerate() {
            let id = be.narrow(ids, 1, o * n as i64 + s as i64, 1); // [B, 1]
            let v = be.embedding(&tables[s], &id); // [B, 1, E]
            let v = be.reshape(&v, &[-1, e]);
            match kind.role {
                Role::Where => wheres.push(all.len()),
                Role::What => whats.push(all.len()),
            }
            all.push(v);
        }
    }
    let cat = |be: &mut B, idx: &[usize]| {
        let parts: Vec<&B::Tensor> = idx.iter().map(|&i| &all[i]).collect();
        be.concat(&parts, 1)
    };
    let every: Vec<usize> = (0..all.len()).collect();
    let s = cat(be, &every);
    let by_role = (split && !wheres.is_empty() && !whats.is_empty())
        .then(|| [cat(be, &wheres), cat(be, &whats)]);
    // Object o's slots are entries [o n, (o + 1) n) of `all`.
    let per_object = per_object.then(|| {
        (0..config.objects as usize)
            .map(|o| {
                let mine: Vec<usize> = (o * n..(o + 1) * n).collect();
                // A role without slots in this grammar reads the object whole.
                let of = |idx: &[usize]| -> Vec<usize> {
                    let v: Vec<usize> = idx.iter().copied().filter(|i| i / n == o).collect();
                    if v.is_empty() {
                        mine.clone()
                    } else {
                        v
                    }
                };
                let (w, h) = (of(&wheres), of(&whats));
                [cat(be, &mine), cat(be, &w), cat(be, &h)]
            })
            .collect()
    });
    CaptionFeatures {
        all: s,
        by_role,
        per_object,
    }
}

/// Word ids [B, L] (right-padded with PAD_ID) -> the caption LSTM's last state.
fn encode_words<B: Backend>(
    be: &mut B,
    config: &WordsConfig,
    embedding: &B::Tensor,
    lstm: &Lstm<B::Tensor>,
    ids: &B::Tensor,
) -> B::Tensor {
    let e = config.embed_size;
    let words = be.embedding(embedding, ids); // [B, L, E]
    let mask = be.token_mask(ids, PAD_ID); // [B, L]
    let mut state: Option<LstmState<B::Tensor>> = None;
    for l in 0..config.length {
        let x = be.narrow(&words, 1, l, 1);
        let x = be.reshape(&x, &[-1, e]);
        let m = be.narrow(&mask, 1, l, 1); // [B, 1]
        let new = lstm.step(be, &x, state.as_ref());
        // Padded positions keep the previous state: s = s_old + m (s_new - s_old).
        state = Some(match state {
            None => LstmState {
                h: be.mul(&m, &new.h),
                c: be.mul(&m, &new.c),
            },
            Some(old) => {
                let dh = be.sub(&new.h, &old.h);
                let dh = be.mul(&m, &dh);
                let dc = be.sub(&new.c, &old.c);
                let dc = be.mul(&m, &dc);
                LstmState {
                    h: be.add(&old.h, &dh),
                    c: be.add(&old.c, &dc),
                }
            }
        });
    }
    state.expect("caption length L is at least 1").h
}
