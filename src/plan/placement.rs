//! GPU placement of the servers a sweep or an A/B case starts from a recipe: each server's
//! `CUDA_VISIBLE_DEVICES`, checked against the GPUs this machine has (NVML's count, else
//! `--gpus N`) before anything starts.
//!
//! - **same**: every server sees the same first GPUs (two servers sharing one GPU);
//! - **separate**: each server gets GPUs of its own, one after another: `gpus:1` gives A GPU 0
//!   and B GPU 1, `gpus:6,2` gives A GPUs 0–5 and B GPUs 6–7 (a ratio split).
//!
//! When perfgate itself runs with `CUDA_VISIBLE_DEVICES` set, the GPUs it may use are those,
//! in that order: a server's GPU `i` is the `i`-th of that list, so placement stays inside
//! what the job was given.

pub use crate::config::Placement;

/// The GPUs this machine offers perfgate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gpus {
    /// How many (NVML's count, else `--gpus`); `None` when unknown.
    pub count: Option<u32>,
    /// perfgate's own `CUDA_VISIBLE_DEVICES`, when set: the devices, in order (then their
    /// number is what is available, whatever the machine has).
    pub visible: Option<Vec<String>>,
}

impl Gpus {
    /// What is available: the visible list's length, else the count.
    pub fn available(&self) -> Option<u32> {
        match &self.visible {
            Some(v) => Some(v.len() as u32),
            None => self.count,
        }
    }

    fn device(&self, i: u32) -> String {
        match &self.visible {
            Some(v) => v.get(i as usize).cloned().unwrap_or_else(|| i.to_string()),
            None => i.to_string(),
        }
    }

    /// Reads `CUDA_VISIBLE_DEVICES` as given (an empty value hides every GPU).
    pub fn visible_from(value: Option<&str>) -> Option<Vec<String>> {
        value.map(|v| {
            v.split(',')
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect()
        })
    }
}

/// Each server's `CUDA_VISIBLE_DEVICES` (`None`: the server asked for no GPU and inherits
/// the environment). `counts[i]` is server i's GPU count, `names[i]` its name in messages.
pub fn assign(
    placement: Placement,
    counts: &[u32],
    names: &[&str],
    gpus: &Gpus,
) -> Result<Vec<Option<String>>, String> {
    if counts.iter().all(|&c| c == 0) {
        return Ok(vec![None; counts.len()]);
    }
    let Some(available) = gpus.available() else {
        return Err(
            "GPU placement needs the number of GPUs on this machine, and NVML sees none: give \
             --gpus N (PERF_GPUS)"
                .into(),
        );
    };
    let name = |i: usize| names.get(i).copied().unwrap_or("server");
    let mut out = Vec::with_capacity(counts.len());
    let mut next = 0u32;
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            out.push(None);
            continue;
        }
        let start = match placement {
            Placement::Same => 0,
            Placement::Separate => next,
        };
        let end = start + n;
        if end > available {
            let what = match placement {
                Placement::Same => format!("{} needs {n} GPU(s)", name(i)),
                Placement::Separate => format!(
                    "the servers need {} GPUs one after another ({} gets GPUs {start}–{})",
                    counts.iter().sum::<u32>(),
                    name(i),
                    end - 1
                ),
            };
            return Err(format!(
                "{what}, but {available} {} available{}",
                if available == 1 { "is" } else { "are" },
                match &gpus.visible {
                    Some(v) => format!(" (CUDA_VISIBLE_DEVICES={})", v.join(",")),
                    None => String::new(),
                }
            ));
        }
        out.push(Some(
            (start..end)
                .map(|d| gpus.device(d))
                .collect::<Vec<_>>()
                .join(","),
        ));
        next = end;
    }
    Ok(out)
}

/// The GPUs the servers occupy together.
pub fn occupied(placement: Placement, counts: &[u32]) -> u32 {
    match placement {
        Placement::Same => counts.iter().copied().max().unwrap_or(0),
        Placement::Separate => counts.iter().sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(n: u32) -> Gpus {
        Gpus {
            count: Some(n),
            visible: None,
        }
    }

    #[test]
    fn same_separate_and_ratio_split() {
        let names = ["target", "speculative"];
        assert_eq!(
            assign(Placement::Same, &[1, 1], &names, &machine(1)).unwrap(),
            [Some("0".to_string()), Some("0".to_string())]
        );
        assert_eq!(
            assign(Placement::Separate, &[1, 1], &names, &machine(2)).unwrap(),
            [Some("0".to_string()), Some("1".to_string())]
        );
        assert_eq!(
            assign(Placement::Separate, &[6, 2], &names, &machine(8)).unwrap(),
            [Some("0,1,2,3,4,5".to_string()), Some("6,7".to_string())]
        );
        assert_eq!(occupied(Placement::Separate, &[6, 2]), 8);
        assert_eq!(occupied(Placement::Same, &[6, 2]), 6);
    }

    #[test]
    fn checked_against_the_gpus_present() {
        let names = ["target", "speculative"];
        let e = assign(Placement::Separate, &[6, 2], &names, &machine(7)).unwrap_err();
        assert!(
            e.contains("speculative gets GPUs 6–7") && e.contains("7 are available"),
            "{e}"
        );
        let e = assign(Placement::Same, &[2], &["server"], &machine(1)).unwrap_err();
        assert!(
            e.contains("server needs 2 GPU(s), but 1 is available"),
            "{e}"
        );
        let e = assign(Placement::Same, &[1], &["server"], &Gpus::default()).unwrap_err();
        assert!(e.contains("--gpus N"), "{e}");
        // No GPU asked for: nothing to check, nothing set.
        assert_eq!(
            assign(Placement::Same, &[0], &["server"], &Gpus::default()).unwrap(),
            [None]
        );
    }

    #[test]
    fn inside_the_jobs_own_visible_devices() {
        let gpus = Gpus {
            count: Some(8),
            visible: Gpus::visible_from(Some("4, 5,7")),
        };
        assert_eq!(
            assign(Placement::Separate, &[2, 1], &["a", "b"], &gpus).unwrap(),
            [Some("4,5".to_string()), Some("7".to_string())]
        );
        let e = assign(Placement::Separate, &[2, 2], &["a", "b"], &gpus).unwrap_err();
        assert!(e.contains("CUDA_VISIBLE_DEVICES=4,5,7"), "{e}");
    }
}
