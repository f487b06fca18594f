//! dataset tests
