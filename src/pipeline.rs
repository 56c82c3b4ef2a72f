//! TEMPORARY STUB so the rest of the crate compiles: the pipeline driver replaces this file
//! wholesale with the real implementation (same API).
#![allow(unused)]
use crate::error::Error;
use crate::media::{Frame, Output, OutputId, PipelineEvent};

pub struct Pipeline;
impl Pipeline {
    pub fn new(_description: &str) -> Result<Pipeline, Error> {
        Err(Error::Pipeline("not implemented yet".into()))
    }
    pub fn outputs(&self) -> Vec<Output> {
        Vec::new()
    }
    pub fn start(
        &mut self,
        _control: tokio::sync::mpsc::UnboundedSender<PipelineEvent>,
        _frames: tokio::sync::mpsc::Sender<Frame>,
    ) -> Result<(), Error> {
        Ok(())
    }
    pub fn request_keyframe(&self, _output: OutputId) {}
    pub fn dropped_frames(&self) -> u64 {
        0
    }
    pub fn stop(&mut self) {}
}
pub fn discover(_description: &str, _timeout: std::time::Duration) -> Result<Vec<Output>, Error> {
    Err(Error::Pipeline("not implemented yet".into()))
}
pub fn describe(o: &Output) -> String {
    format!("{}.{}", o.element, o.pad)
}
