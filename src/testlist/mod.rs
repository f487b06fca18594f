//! testlist
