// SPDX-License-Identifier: MIT OR Apache-2.0
//! The inference thread: it computes the next batch of clips while the element
//! pushes the current one, and stops a running inference when the element stops.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use ort::session::RunOptions;

use super::inference::{Clip, Generator, Request};

/// A thread running a Generator: requests in, batches of clips out, in order. The
/// schedule (schedule.rs) keeps at most two batches out, so the result channel holds
/// two and the worker never blocks on it.
pub struct Worker {
    requests: Option<mpsc::Sender<Request>>,
    results: Option<mpsc::Receiver<Result<Vec<Clip>, String>>>,
    thread: Option<JoinHandle<()>>,
    run_options: Arc<RunOptions>,
}

impl Worker {
    pub fn spawn(mut generator: Generator) -> std::io::Result<Worker> {
        let run_options = generator.run_options.clone();
        let (req_tx, req_rx) = mpsc::channel::<Request>();
        let (res_tx, res_rx) = mpsc::sync_channel(2);
        let thread = std::thread::Builder::new()
            .name("syncdraw-infer".into())
            .spawn(move || {
                while let Ok(req) = req_rx.recv() {
                    let result = generator.generate(&req);
                    if res_tx.send(result).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker {
            requests: Some(req_tx),
            results: Some(res_rx),
            thread: Some(thread),
            run_options,
        })
    }

    /// Queues a request; false if the worker is gone.
    pub fn request(&self, req: Request) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|tx| tx.send(req).is_ok())
    }

    /// Waits up to `timeout` for the next result.
    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Result<Vec<Clip>, String>, mpsc::RecvTimeoutError> {
        match &self.results {
            Some(rx) => rx.recv_timeout(timeout),
            None => Err(mpsc::RecvTimeoutError::Disconnected),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing both channels ends the thread; the terminate flag ends the inference
        // it may be running within one graph node, so stopping does not wait for a
        // whole batch.
        self.requests.take();
        self.results.take();
        let _ = self.run_options.terminate();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
