//! Warm starts: a new model whose weights begin from a trained model with fewer
//! objects per caption (for example two-digit captions from a one-digit model),
//! or with fewer drawing steps.
//!
//! Every LSTM's input ends with the caption features (eq. 12: [R, h_dec, S];
//! eq. 13: [z, S], or [z, S_role] for a what-where decoder), and a slot encoder
//! lays S out object after object. A model for more objects therefore has the
//! same variables as the smaller one, except that each LSTM input weight `wx`
//! has more rows at its end, one block per added object. The warm start copies
//! every variable of equal shape, copies the old rows of each grown `wx` and sets
//! its new rows to zero. At step 0 the new model ignores the added objects and
//! draws exactly what the source model draws for the first object; training then
//! has to learn only how the added objects enter, not how to draw.
//! Unconditional models have no caption inputs: every variable is copied whole
//! (a two-digit model drawn in turn or on layers then draws each digit as the
//! one-digit model does).
//!
//! A model whose encoder does not read the caption (`encoder_caption` off)
//! starts the same way from one whose encoder does: its encoder input weight is
//! the source's without the caption rows at its end. It infers the latents
//! from the video alone from the first step, so its bound starts above the
//! source's until the encoder has learnt to do without S.
//!
//! No variable depends on the number of drawing steps T, so the same copy also
//! starts a model with more steps from one with fewer (same objects): its first
//! T steps draw what the source draws, and the added steps go on writing to
//! that canvas (eq. 10) from where the source stopped.
use crate::model::SyncDraw;
use tch::Tensor;

#[derive(Debug, thiserror::Error)]
pub enum WarmStartError {
    #[error("the warm-start model has no weight {0}: it is a different model (variant, decoder or caption encoder)")]
    Missing(String),
    #[error("weight {name} has shape {source_shape:?} in the warm-start model and {target:?} in the new one: only the caption inputs of the LSTMs may grow (same sizes, more objects per caption)")]
    Shape {
        name: String,
        source_shape: Vec<i64>,
        target: Vec<i64>,
    },
}

/// What a warm start did, by variable name.
#[derive(Debug, Default)]
pub struct WarmStart {
    /// Copied whole.
    pub copied: Vec<String>,
    /// LSTM input weights whose old rows were copied and new rows zeroed.
    pub grown: Vec<String>,
    /// The encoder LSTM's input weights, less the caption's rows, where the
    /// new model's encoder does not read the caption (`encoder_caption`).
    pub shrunk: Vec<String>,
}

/// Sets the weights of `target` from `source` as the module documentation says.
pub fn warm_start(target: &SyncDraw, source: &SyncDraw) -> Result<WarmStart, WarmStartError> {
    let from = source.vs.variables();
    let mut vars: Vec<(String, Tensor)> = target.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut done = WarmStart::default();
    for (name, mut var) in vars {
        let old = from
            .get(&name)
            .ok_or_else(|| WarmStartError::Missing(name.clone()))?;
        let (s, t) = (old.size(), var.size());
        let old = old.to_device(var.device());
        if s == t {
            tch::no_grad(|| var.copy_(&old));
            done.copied.push(name);
        } else if name.ends_with("wx") && s.len() == 2 && s[1] == t[1] && s[0] < t[0] {
            tch::no_grad(|| {
                let _ = var.zero_();
                var.narrow(0, 0, s[0]).copy_(&old);
            });
            done.grown.push(name);
        } else if name.starts_with("encoder.")
            && name.ends_with("wx")
            && s.len() == 2
            && s[1] == t[1]
            && s[0] - t[0] == source.config.encoder_caption_size()
            && !target.config.encoder_caption
        {
            // An encoder that no longer reads the caption: its inputs are the
            // source's without S, the last rows.
            tch::no_grad(|| var.copy_(&old.narrow(0, 0, t[0])));
            done.shrunk.push(name);
        } else {
            return Err(WarmStartError::Shape {
                name,
                source_shape: s,
                target: t,
            });
        }
    }
    Ok(done)
}
