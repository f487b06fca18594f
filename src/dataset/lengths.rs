//! Request lengths, drawn exactly as upstream's `get_norm_dist_lengths` / `get_unif_dist_lengths`.

use super::error::DatasetError;
use super::numpy::{LegacyRandomState, Pcg64};
use super::spec::{LengthDist, MAX_REQUEST_TOKENS};

/// Input and output lengths, one pair per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lengths {
    pub input: Vec<u64>,
    pub output: Vec<u64>,
}

impl Lengths {
    pub fn max_input(&self) -> u64 {
        self.input.iter().copied().max().unwrap_or(0)
    }
    pub fn max_output(&self) -> u64 {
        self.output.iter().copied().max().unwrap_or(0)
    }
}

fn alloc(n: u64) -> Result<Vec<u64>, DatasetError> {
    let mut v = Vec::new();
    let n = usize::try_from(n)
        .map_err(|_| DatasetError::OutOfMemory(format!("{n} request lengths")))?;
    v.try_reserve_exact(n)
        .map_err(|_| DatasetError::OutOfMemory(format!("{n} request lengths")))?;
    Ok(v)
}

/// Both length lists of a spec. Upstream re-seeds before each list, so in the normal case both
/// lists come from the same standard-normal draws and in the uniform case from the same PCG64
/// stream.
pub fn draw_lengths(dist: &LengthDist, n: u64, seed: u64) -> Result<Lengths, DatasetError> {
    match *dist {
        LengthDist::Normal {
            input_mean,
            input_stdev,
            output_mean,
            output_stdev,
        } => {
            let seed = u32::try_from(seed).map_err(|_| {
                DatasetError::spec(format!("seed {seed} is out of numpy's legacy range"))
            })?;
            let zs = standard_normals(seed, n)?;
            Ok(Lengths {
                input: normal_lengths(&zs, input_mean, input_stdev, "input")?,
                output: normal_lengths(&zs, output_mean, output_stdev, "output")?,
            })
        }
        LengthDist::Uniform {
            input_min,
            input_max,
            output_min,
            output_max,
        } => Ok(Lengths {
            input: uniform_lengths(input_min, input_max, n, seed)?,
            output: uniform_lengths(output_min, output_max, n, seed)?,
        }),
    }
}

/// `n` draws of numpy's legacy standard normal after `np.random.seed(seed)`.
pub fn standard_normals(seed: u32, n: u64) -> Result<Vec<f64>, DatasetError> {
    let mut rs = LegacyRandomState::new(seed);
    let count = usize::try_from(n).map_err(|_| DatasetError::OutOfMemory(format!("{n} draws")))?;
    let mut zs = Vec::new();
    zs.try_reserve_exact(count)
        .map_err(|_| DatasetError::OutOfMemory(format!("{n} draws")))?;
    zs.extend((0..count).map(|_| rs.standard_normal()));
    Ok(zs)
}

/// `[max(1, math.ceil(x)) for x in np.random.normal(mean, stdev, n)]`, given the standard
/// normal draws (numpy computes `loc + scale * z` in double precision).
pub fn normal_lengths(
    zs: &[f64],
    mean: u64,
    stdev: u64,
    which: &str,
) -> Result<Vec<u64>, DatasetError> {
    let (loc, scale) = (mean as f64, stdev as f64);
    let mut out = alloc(zs.len() as u64)?;
    for &z in zs {
        let x = (loc + scale * z).ceil();
        if x > MAX_REQUEST_TOKENS as f64 {
            return Err(DatasetError::spec(format!(
                "an {which} length of {x} was drawn, above the per-request limit of \
                 {MAX_REQUEST_TOKENS} tokens (mean {mean}, stdev {stdev})"
            )));
        }
        out.push(if x < 1.0 { 1 } else { x as u64 });
    }
    Ok(out)
}

/// `np.random.default_rng(seed).integers(min, max + 1, size=n)`.
pub fn uniform_lengths(min: u64, max: u64, n: u64, seed: u64) -> Result<Vec<u64>, DatasetError> {
    if min > max || max > MAX_REQUEST_TOKENS {
        return Err(DatasetError::spec(format!(
            "invalid uniform bounds {min}..={max}"
        )));
    }
    let mut pcg = Pcg64::from_seed(seed);
    let mut out = alloc(n)?;
    for _ in 0..n {
        out.push(pcg.integer(min as i64, max as i64 + 1) as u64);
    }
    Ok(out)
}
