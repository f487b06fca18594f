//! Synthetic and real-prompt datasets: a bit-exact port of prepare_dataset.

/// Generates a planned dataset. (Filled in by the dataset port.)
pub fn generate_for_plan(req: &crate::plan::DatasetRequest) -> anyhow::Result<()> {
    anyhow::bail!(
        "dataset generation for {} is not available in this build",
        req.output.display()
    )
}
