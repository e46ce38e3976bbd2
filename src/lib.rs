// SPDX-License-Identifier: MIT OR Apache-2.0
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

//! GStreamer plugin `syncdraw`: the `syncdrawsrc` element generates video from a
//! caption with an exported Sync-DRAW model (docs/model-format.md) on ONNX Runtime.

use gst::glib;

pub mod render;
pub mod syncdrawsrc;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    syncdrawsrc::register(plugin)
}

gst::plugin_define!(
    syncdraw,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
