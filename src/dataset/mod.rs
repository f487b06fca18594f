//! Synthetic and real-prompt datasets: a bit-exact port of prepare_dataset.
