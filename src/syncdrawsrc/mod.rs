// SPDX-License-Identifier: MIT OR Apache-2.0
//! `syncdrawsrc`: a PushSrc that runs a Sync-DRAW model and emits raw video.

use gst::glib;
use gst::prelude::*;

pub mod convert;
mod imp;
pub mod inference;
pub mod model;
mod open;
pub mod ortlib;
pub mod schedule;
pub mod select;
pub mod session;
pub mod worker;

/// The frame rate the element fixates to when downstream leaves it open (and the
/// batch renderer's files have).
pub const DEFAULT_FPS: gst::Fraction = gst::Fraction::from_integer(10);

/// The `execution-provider` property: where ONNX Runtime runs the model.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSyncdrawExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(
        name = "Auto: CUDA if it can be used, else CPU (with a warning saying why)",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 1,
    #[enum_value(name = "CUDA (an error if it cannot be used)", nick = "cuda")]
    Cuda = 2,
}

glib::wrapper! {
    pub struct SyncdrawSrc(ObjectSubclass<imp::SyncdrawSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "syncdrawsrc",
        gst::Rank::NONE,
        SyncdrawSrc::static_type(),
    )
}
