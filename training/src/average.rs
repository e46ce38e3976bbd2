//! An exponential moving average of the weights over the optimizer steps
//! (Polyak averaging, as Kingma and Ba's Adam paper describes it in its §7.2):
//! after every step, a <- d a + (1 - d) w for each trained weight w. The
//! average smooths out the step-to-step noise of a high learning rate, so it
//! can hold a better model than the weights themselves at no cost in training
//! steps. A run keeps it beside its weights (`train --ema-decay`), evaluates
//! it with them, and checkpoints hold it, so a resumed run continues it;
//! `weights --average` writes it as the weights to ship.
use std::collections::HashMap;
use tch::{nn::VarStore, Tensor};

/// Name prefix of the averaged weights in a checkpoint.
pub const AVERAGE: &str = "average.";

/// The averaged weights, by variable name.
pub type AverageState = HashMap<String, Tensor>;

pub struct Average {
    decay: f64,
    /// (weight, its average), for the trained weights, in name order.
    pairs: Vec<(String, Tensor, Tensor)>,
}

impl Average {
    /// The average of the trained variables of `vs` with this decay, from
    /// `state` where it holds a variable, else from the weights as they are.
    pub fn new(vs: &VarStore, decay: f64, mut state: AverageState) -> Self {
        let mut pairs: Vec<(String, Tensor, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, w)| w.requires_grad())
            .map(|(name, w)| {
                let a = match state.remove(&name) {
                    Some(a) => a.to_device(w.device()),
                    None => tch::no_grad(|| w.detach().copy()),
                };
                (name, w, a)
            })
            .collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Self { decay, pairs }
    }

    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// One optimizer step's update: a <- a + (1 - d)(w - a).
    pub fn update(&mut self) {
        tch::no_grad(|| {
            for (_, w, a) in &mut self.pairs {
                let _ = a.lerp_(&*w, 1.0 - self.decay);
            }
        });
    }

    /// Exchanges the weights and the average in place: call it twice around
    /// what should see the averaged weights (an evaluation).
    pub fn swap(&mut self) {
        tch::no_grad(|| {
            for (_, w, a) in &mut self.pairs {
                let kept = w.detach().copy();
                w.detach().copy_(&*a);
                a.copy_(&kept);
            }
        });
    }

    /// The averaged weights by name, for a checkpoint.
    pub fn state(&self) -> Vec<(&str, &Tensor)> {
        self.pairs.iter().map(|(n, _, a)| (n.as_str(), a)).collect()
    }
}
