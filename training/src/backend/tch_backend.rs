//! [`Backend`] on eager libtorch tensors: what training runs (with autograd).
use super::Backend;
use tch::{Device, Kind, Tensor};

/// Runs the generic model code on libtorch tensors on one device.
#[derive(Debug, Clone, Copy)]
pub struct TchBackend {
    pub device: Device,
}

impl TchBackend {
    pub fn new(device: Device) -> Self {
        Self { device }
    }
}

impl Backend for TchBackend {
    type Tensor = Tensor;

    fn param(&mut self, _name: &str, value: &Tensor) -> Tensor {
        value.shallow_clone()
    }
    fn constant(&mut self, values: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values)
            .reshape(shape)
            .to_device(self.device)
    }
    fn add(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        a + b
    }
    fn sub(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        a - b
    }
    fn mul(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        a * b
    }
    fn div(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        a / b
    }
    fn matmul(&mut self, a: &Tensor, b: &Tensor) -> Tensor {
        a.matmul(b)
    }
    fn sigmoid(&mut self, a: &Tensor) -> Tensor {
        a.sigmoid()
    }
    fn tanh(&mut self, a: &Tensor) -> Tensor {
        a.tanh()
    }
    fn exp(&mut self, a: &Tensor) -> Tensor {
        a.exp()
    }
    fn softplus(&mut self, a: &Tensor) -> Tensor {
        a.softplus()
    }
    fn clamp_min(&mut self, a: &Tensor, floor: f32) -> Tensor {
        a.clamp_min(floor as f64)
    }
    fn sum_keepdim(&mut self, a: &Tensor, axis: i64) -> Tensor {
        a.sum_dim_intlist([axis].as_slice(), true, Kind::Float)
    }
    fn softmax(&mut self, a: &Tensor, axis: i64) -> Tensor {
        a.softmax(axis, Kind::Float)
    }
    fn reshape(&mut self, a: &Tensor, shape: &[i64]) -> Tensor {
        a.reshape(shape)
    }
    fn narrow(&mut self, a: &Tensor, axis: i64, start: i64, len: i64) -> Tensor {
        a.narrow(axis, start, len)
    }
    fn concat(&mut self, parts: &[&Tensor], axis: i64) -> Tensor {
        Tensor::cat(parts, axis)
    }
    fn transpose(&mut self, a: &Tensor, perm: &[i64]) -> Tensor {
        a.permute(perm)
    }
    fn unsqueeze(&mut self, a: &Tensor, axis: i64) -> Tensor {
        a.unsqueeze(axis)
    }
    fn cumsum(&mut self, a: &Tensor, axis: i64) -> Tensor {
        a.cumsum(axis, Kind::Float)
    }
    fn embedding(&mut self, table: &Tensor, ids: &Tensor) -> Tensor {
        Tensor::embedding(table, ids, -1, false, false)
    }
    fn token_mask(&mut self, ids: &Tensor, pad_id: i64) -> Tensor {
        ids.ne(pad_id).to_kind(Kind::Float)
    }
}
