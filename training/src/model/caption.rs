//! The caption encoder: S in eq. 11-13.
//!
//! The paper uses pre-trained skip-thought vectors (eq. 11). Those cannot be had
//! here, so S comes from a small encoder trained jointly with the model: word
//! embeddings read by an LSTM in caption order, S = its last hidden state. Word order
//! therefore matters ("digit 1 ... up and down and digit 2 ..." differs from the
//! swapped caption). Padding (id 0) leaves the state unchanged, so the padded length
//! L does not change the meaning of a caption.
use super::layers::{Lstm, LstmParams, LstmState};
use crate::backend::Backend;
use crate::model::config::CaptionConfig;
use tch::{nn, Tensor};

pub const PAD_ID: i64 = 0;

pub struct CaptionEncoderParams {
    pub config: CaptionConfig,
    pub embedding: Tensor,
    pub lstm: LstmParams,
}

pub struct CaptionEncoder<T> {
    config: CaptionConfig,
    embedding: T,
    lstm: Lstm<T>,
}

impl CaptionEncoderParams {
    pub fn new(p: &nn::Path, config: &CaptionConfig) -> Self {
        Self {
            config: config.clone(),
            embedding: p.var(
                "embedding",
                &[config.vocab_size, config.embed_size],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            ),
            lstm: LstmParams::new(&(p / "lstm"), config.embed_size, config.hidden_size),
        }
    }

    pub fn bind<B: Backend>(&self, be: &mut B) -> CaptionEncoder<B::Tensor> {
        CaptionEncoder {
            config: self.config.clone(),
            embedding: be.param("caption.embedding", &self.embedding),
            lstm: self.lstm.bind(be),
        }
    }
}

impl<T> CaptionEncoder<T> {
    /// S for int64 token ids [B, L] (right-padded with PAD_ID): [B, hidden].
    pub fn encode<B: Backend<Tensor = T>>(&self, be: &mut B, ids: &T) -> T {
        let e = self.config.embed_size;
        let words = be.embedding(&self.embedding, ids); // [B, L, E]
        let mask = be.token_mask(ids, PAD_ID); // [B, L]
        let mut state: Option<LstmState<T>> = None;
        for l in 0..self.config.length {
            let x = be.narrow(&words, 1, l, 1);
            let x = be.reshape(&x, &[-1, e]);
            let m = be.narrow(&mask, 1, l, 1); // [B, 1]
            let new = self.lstm.step(be, &x, state.as_ref());
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
}
