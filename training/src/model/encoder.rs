//! The inference side, used only in training: read attention (eq. 1-5), the
//! encoder LSTM (eq. 7 / 12) and the approximate posterior Q(Z^t | h_enc^t).
use super::config::{ModelConfig, Variant};
use super::filterbank::params_per_group;
use super::layers::{LinearParams, LstmParams};
use tch::nn;

pub struct EncoderParams {
    /// h_dec^{t-1} -> read window parameters (§3.1.1).
    pub read_window: LinearParams,
    pub lstm: LstmParams,
    /// h_enc^t -> (mu^t, log sigma^t) of Q(Z^t | h_enc^t).
    pub posterior: LinearParams,
}

impl EncoderParams {
    pub fn new(p: &nn::Path, c: &ModelConfig) -> Self {
        let temporal = c.variant == Variant::Baseline;
        // [R^t, h_dec^{t-1}, S]: R^t holds read(x) and read(x_hat) (eq. 7, 12);
        // without S where the encoder does not read the caption.
        let input = 2 * c.read_patch_size() + c.dec_size + c.encoder_caption_size();
        Self {
            read_window: LinearParams::new(
                &(p / "read_window"),
                c.dec_size,
                c.attention_groups() * params_per_group(temporal),
            ),
            lstm: LstmParams::new(&(p / "enc"), input, c.enc_size, c.forget_bias),
            posterior: LinearParams::new(&(p / "posterior"), c.enc_size, 2 * c.z_dim),
        }
    }
}
