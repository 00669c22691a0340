//! A child process the test owns: killed and reaped when dropped, so a failing assertion leaves
//! neither Prometheus nor a training run behind.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// SIGINT, as Ctrl-C sends it. The shell's builtin `kill`: the root crate has no libc
    /// dependency, and a slim image may have no /bin/kill.
    pub fn interrupt(&self) {
        let status =
            std::process::Command::new("sh").args(["-c", "kill -INT \"$1\"", "sh", &self.0.id().to_string()]).status().expect("run sh");
        assert!(status.success(), "kill -INT {} failed", self.0.id());
    }

    /// The exit status, once the process has exited; None while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("poll child")
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Already exited: kill fails harmlessly and wait returns the status.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
