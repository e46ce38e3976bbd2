//! [`Backend`] on eager libtorch tensors: what training runs (with autograd).
use super::Backend;
use tch::{Device, Kind, Tensor};

/// The number format of the matrix products (every [`Backend::matmul`]: the
/// attention's filterbank products and the linear and LSTM layers). Everything
/// else (filterbanks, gates, canvas, loss) and the parameters stay f32.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Products {
    /// f32 products: the default, and what evaluation, sampling and export
    /// always use.
    #[default]
    F32,
    /// bfloat16 products: the operands of each product are rounded to bf16 (8
    /// significant bits), the kernel (oneDNN) accumulates in f32 and rounds the
    /// result to bf16, which is widened back to f32 for the rest of the step.
    /// Faster than f32 on CPUs with AVX-512 BF16, slower where the CPU has no
    /// bf16 instructions; at equal steps it trained 1.6 % worse than f32
    /// (docs/benchmarks.md, "bf16 products for training"), so it is not the
    /// default.
    Bf16,
}

/// Whether this CPU has bf16 dot-product instructions (AVX-512 BF16).
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What `train` warns about before a run with `products` on `device`, given
/// whether the CPU has AVX-512 BF16 (`cpu_has_bf16`): bf16 products on a CPU
/// without it are emulated by libtorch and slower than f32. None when there is
/// nothing to warn about (f32, a CUDA device, or a CPU with the instructions).
pub fn products_warning(
    products: Products,
    device: Device,
    cpu_bf16: bool,
) -> Option<&'static str> {
    (products == Products::Bf16 && device == Device::Cpu && !cpu_bf16).then_some(
        "warning: --products bf16 on a CPU without AVX-512 BF16: libtorch emulates \
         the bf16 products, which is slower than f32",
    )
}

/// Runs the generic model code on libtorch tensors on one device.
#[derive(Debug, Clone, Copy)]
pub struct TchBackend {
    pub device: Device,
    pub products: Products,
}

impl TchBackend {
    /// f32 throughout.
    pub fn new(device: Device) -> Self {
        Self::with_products(device, Products::F32)
    }

    pub fn with_products(device: Device, products: Products) -> Self {
        Self { device, products }
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
        match self.products {
            Products::F32 => a.matmul(b),
            // The casts are differentiable: each product's gradients reach a
            // and b as f32, so a parameter's gradient is summed in f32.
            Products::Bf16 => a
                .to_kind(Kind::BFloat16)
                .matmul(&b.to_kind(Kind::BFloat16))
                .to_kind(Kind::Float),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Only bf16 products on a CPU that lacks AVX-512 BF16 get the warning, and
    /// it names the option and why it is slower.
    #[test]
    fn bf16_products_without_the_instructions_are_warned_about() {
        let w = products_warning(Products::Bf16, Device::Cpu, false).expect("a warning");
        assert!(
            w.contains("--products bf16") && w.contains("AVX-512 BF16") && w.contains("slower")
        );
        assert_eq!(products_warning(Products::Bf16, Device::Cpu, true), None);
        assert_eq!(
            products_warning(Products::Bf16, Device::Cuda(0), false),
            None
        );
        assert_eq!(products_warning(Products::F32, Device::Cpu, false), None);
        assert_eq!(products_warning(Products::F32, Device::Cpu, true), None);
    }
}
