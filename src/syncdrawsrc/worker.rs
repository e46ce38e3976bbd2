// SPDX-License-Identifier: MIT OR Apache-2.0
//! The inference threads: they compute the next batches of clips while the element
//! pushes the current one, and stop a running inference when the element stops.
//!
//! There is one thread per session: on CUDA one, on the CPU as many as the
//! `parallel-batches` property asks for (default: one single-threaded session per
//! core), which share the cores out (session.rs). Two single-threaded sessions on
//! two cores, each computing a batch, give more frames per second than one session
//! whose thread pool is woken and parked for every operator (docs/benchmarks.md,
//! "Parallel batches by default, and clips without copies").

use std::cell::Cell;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use ort::session::RunOptions;

use super::inference::{Clip, Generator, Request};

type Answer = Result<Vec<Clip>, String>;

/// One inference thread with its own generator.
struct Lane {
    requests: Option<mpsc::Sender<Request>>,
    results: Option<mpsc::Receiver<Answer>>,
    thread: Option<JoinHandle<()>>,
}

/// Inference threads running Generators: requests in, batches of clips out, in
/// the order they were asked for. Requests go to the threads in turn and answers
/// are taken from them in the same turn, so a batch is never overtaken by a
/// later one. The schedule (schedule.rs) keeps at most one batch more out than
/// there are threads, so every result channel holds two and no thread blocks on
/// it.
pub struct Worker {
    lanes: Vec<Lane>,
    /// Requests sent and answers taken so far (the lane of the next is this
    /// count modulo the number of lanes). Only the streaming thread, holding
    /// the element's worker lock, uses them.
    sent: Cell<usize>,
    taken: Cell<usize>,
    run_options: Arc<RunOptions>,
}

impl Worker {
    /// Starts one thread per generator; they share `run_options`, whose terminate
    /// flag stops them all.
    pub fn spawn(
        generators: Vec<Generator>,
        run_options: Arc<RunOptions>,
    ) -> std::io::Result<Worker> {
        let mut lanes = Vec::with_capacity(generators.len());
        for (i, mut generator) in generators.into_iter().enumerate() {
            let (req_tx, req_rx) = mpsc::channel::<Request>();
            let (res_tx, res_rx) = mpsc::sync_channel(2);
            let thread = std::thread::Builder::new()
                .name(format!("syncdraw-infer-{i}"))
                .spawn(move || {
                    while let Ok(req) = req_rx.recv() {
                        let result = generator.generate(&req);
                        if res_tx.send(result).is_err() {
                            break;
                        }
                    }
                })?;
            lanes.push(Lane {
                requests: Some(req_tx),
                results: Some(res_rx),
                thread: Some(thread),
            });
        }
        Ok(Worker {
            lanes,
            sent: Cell::new(0),
            taken: Cell::new(0),
            run_options,
        })
    }

    /// How many batches are computed side by side.
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// Queues a request; false if the worker is gone.
    pub fn request(&self, req: Request) -> bool {
        let n = self.sent.get();
        let Some(lane) = self.lanes.get(n % self.lanes.len().max(1)) else {
            return false;
        };
        let ok = lane
            .requests
            .as_ref()
            .is_some_and(|tx| tx.send(req).is_ok());
        if ok {
            self.sent.set(n + 1);
        }
        ok
    }

    /// Waits up to `timeout` for the answer to the oldest request not yet answered.
    pub fn recv_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Answer, mpsc::RecvTimeoutError> {
        let n = self.taken.get();
        let rx = self
            .lanes
            .get(n % self.lanes.len().max(1))
            .and_then(|lane| lane.results.as_ref());
        match rx {
            Some(rx) => {
                let answer = rx.recv_timeout(timeout)?;
                self.taken.set(n + 1);
                Ok(answer)
            }
            None => Err(mpsc::RecvTimeoutError::Disconnected),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channels ends the threads; the terminate flag ends the
        // inferences they may be running within one graph node, so stopping does
        // not wait for a whole batch.
        for lane in &mut self.lanes {
            lane.requests.take();
            lane.results.take();
        }
        let _ = self.run_options.terminate();
        for lane in &mut self.lanes {
            if let Some(t) = lane.thread.take() {
                let _ = t.join();
            }
        }
    }
}
