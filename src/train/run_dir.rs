//! The output folder of `srlm train`: one process at a time (an OS lock whose file names the
//! holder's PID), one run per folder (`run.json` names it), and no leftovers of interrupted
//! writes. A run that finds another run's outputs stops before touching them, unless it
//! continues that run (`--resume`) or replaces it (`--force`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

const LOCK: &str = ".srlm.lock";
pub const RUN_FILE: &str = "run.json";

/// What a run writes into its folder, besides `run.json`: removed by `--force`.
fn is_run_output(name: &str) -> bool {
    let patterns = ["stage-", "checkpoints-stage-", "steps-stage-", "run-stage-"];
    patterns.iter().any(|p| name.starts_with(p)) || ["rollouts.jsonl", "traces.jsonl", "tokenizer"].contains(&name)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub run_id: String,
    pub recipe_hash: String,
    pub pid: u32,
    /// Seconds since the Unix epoch when the run (not this invocation) started.
    pub started: u64,
}

/// The claimed folder; the lock is released when it drops (or the process dies).
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    pub run_id: String,
    _lock: File,
}

/// How this invocation relates to what the folder may hold.
pub enum Claim<'a> {
    /// A new run: the folder must hold no other run.
    Fresh,
    /// Continuing the run `run_id` (empty for checkpoints older than run ids).
    Resume { run_id: &'a str },
}

impl RunDir {
    /// Locks `path` (creating it), checks it holds no other run unless `force` (which removes
    /// that run's outputs), removes interrupted temporary folders and records this run.
    pub fn claim(path: &Path, claim: Claim, recipe_hash: &str, force: bool) -> Result<RunDir> {
        std::fs::create_dir_all(path).with_context(|| format!("creating the output folder {}", path.display()))?;
        let lock = lock(path)?;
        let previous = read_identity(path)?;
        let continuing = match (&claim, &previous) {
            (Claim::Resume { run_id }, Some(p)) => !run_id.is_empty() && p.run_id == *run_id,
            _ => false,
        };
        let others = other_run_outputs(path)?;
        if !continuing && !others.is_empty() {
            if !force {
                let what = match &previous {
                    Some(p) => format!("run {} (started {}, PID {})", p.run_id, age(p.started), p.pid),
                    None => format!("the outputs of an earlier run ({})", others.join(", ")),
                };
                bail!(
                    "{} holds {what}; continue it with --resume <one of its checkpoints>, choose another --out, \
                     or pass --force to delete that run's outputs and start over",
                    path.display()
                );
            }
            for name in &others {
                let p = path.join(name);
                let removed = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                removed.with_context(|| format!("--force: removing {}", p.display()))?;
            }
        }
        remove_interrupted_writes(path)?;
        let run_id = match (&claim, &previous) {
            (Claim::Resume { .. }, Some(p)) if continuing => p.run_id.clone(),
            (Claim::Resume { run_id }, _) if !run_id.is_empty() => run_id.to_string(),
            _ => format!("{:016x}", rand::random::<u64>()),
        };
        let started = match &previous {
            Some(p) if continuing => p.started,
            _ => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        let identity = RunIdentity { run_id: run_id.clone(), recipe_hash: recipe_hash.into(), pid: std::process::id(), started };
        let file = path.join(RUN_FILE);
        crate::atomic_file::write_atomic(&file, serde_json::to_string_pretty(&identity)?.as_bytes())
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(RunDir { path: path.to_path_buf(), run_id, _lock: lock })
    }
}

/// How long ago `started` (Unix seconds) was, in the largest whole unit.
fn age(started: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let s = now.saturating_sub(started);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// An exclusive lock on `dir/.srlm.lock`, which then holds this process's PID.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    try_lock(dir, &mut file)?;
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(file)
}

/// Fails, naming the holder's PID, when a live run holds `dir`; creates nothing. Lets a second
/// run say so before checks that the first run would also trip (its metrics port).
pub fn refuse_if_in_use(dir: &Path) -> Result<()> {
    match OpenOptions::new().read(true).write(true).open(dir.join(LOCK)) {
        Ok(mut file) => try_lock(dir, &mut file),
        Err(_) => Ok(()),
    }
}

fn try_lock(dir: &Path, file: &mut File) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() { "another process".to_string() } else { format!("PID {holder}") };
            bail!("{} is in use by another srlm run ({who}); wait for it to finish or choose another --out", dir.display());
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", dir.join(LOCK).display())),
    }
}

fn read_identity(dir: &Path) -> Result<Option<RunIdentity>> {
    let path = dir.join(RUN_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).map(Some).with_context(|| format!("{}: not a run identity (delete it, or pass --force)", path.display()))
}

/// Names of entries a run wrote: `run.json` and the outputs of [`is_run_output`].
fn other_run_outputs(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name == RUN_FILE || is_run_output(&name) {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

/// Removes `.<name>.tmp-<pid>` folders (checkpoints and exports written through a temporary
/// sibling) left by a killed run; safe because this process holds the folder's lock.
fn remove_interrupted_writes(dir: &Path) -> Result<()> {
    let mut folders = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("checkpoints-stage-")) {
            folders.push(path);
        }
    }
    for folder in folders {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with('.') && name.contains(".tmp-") && path.is_dir() {
                std::fs::remove_dir_all(&path).with_context(|| format!("removing the interrupted write {}", path.display()))?;
                tracing::info!("removed the interrupted write {}", path.display());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_while_the_first_holds_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let first = RunDir::claim(tmp.path(), Claim::Fresh, "h", false).unwrap();
        let err = RunDir::claim(tmp.path(), Claim::Fresh, "h", false).unwrap_err().to_string();
        assert!(err.contains("in use by another srlm run") && err.contains(&format!("PID {}", std::process::id())), "{err}");
        assert!(refuse_if_in_use(tmp.path()).is_err());
        drop(first);
        refuse_if_in_use(tmp.path()).unwrap();
        refuse_if_in_use(&tmp.path().join("never-used")).unwrap();
    }

    #[test]
    fn a_folder_with_another_run_is_refused_unless_resumed_or_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let first = RunDir::claim(tmp.path(), Claim::Fresh, "h", false).unwrap();
        let id = first.run_id.clone();
        drop(first);
        std::fs::create_dir_all(tmp.path().join("checkpoints-stage-1/checkpoint-00000004")).unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let err = RunDir::claim(tmp.path(), Claim::Fresh, "h", false).unwrap_err().to_string();
        assert!(err.contains(&format!("holds run {id} (started ")) && err.contains(" s ago, PID ") && err.contains("--force"), "{err}");
        let resumed = RunDir::claim(tmp.path(), Claim::Resume { run_id: &id }, "h", false).unwrap();
        assert_eq!(resumed.run_id, id);
        drop(resumed);
        let err = RunDir::claim(tmp.path(), Claim::Resume { run_id: "someone-else" }, "h", false).unwrap_err();
        assert!(err.to_string().contains("holds run"), "{err}");
        let forced = RunDir::claim(tmp.path(), Claim::Fresh, "h", true).unwrap();
        assert_ne!(forced.run_id, id);
        assert!(!tmp.path().join("checkpoints-stage-1").exists(), "--force removes the old run's outputs");
        assert_eq!(std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(), "mine", "and only those");
    }

    #[test]
    fn a_runs_age_reads_in_its_largest_whole_unit() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(age(now - 130), "2 min ago");
        assert_eq!(age(now - 3 * 86_400), "3 days ago");
        assert!(age(now).ends_with(" s ago"));
    }

    #[test]
    fn legacy_outputs_without_run_json_count_as_another_run() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("stage-0-sft")).unwrap();
        let err = RunDir::claim(tmp.path(), Claim::Fresh, "h", false).unwrap_err().to_string();
        assert!(err.contains("earlier run (stage-0-sft)"), "{err}");
    }

    #[test]
    fn interrupted_temporary_folders_are_removed_and_finished_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let id = RunDir::claim(tmp.path(), Claim::Fresh, "h", false).unwrap().run_id;
        let ckpts = tmp.path().join("checkpoints-stage-1");
        for d in [".checkpoint-00000006.tmp-4242", "checkpoint-00000004"] {
            std::fs::create_dir_all(ckpts.join(d)).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join(".stage-1-grpo.tmp-77")).unwrap();
        drop(RunDir::claim(tmp.path(), Claim::Resume { run_id: &id }, "h", false).unwrap());
        assert!(!tmp.path().join(".stage-1-grpo.tmp-77").exists());
        assert!(!ckpts.join(".checkpoint-00000006.tmp-4242").exists());
        assert!(ckpts.join("checkpoint-00000004").is_dir());
    }
}
