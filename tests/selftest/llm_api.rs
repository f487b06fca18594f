//! llm_api tests
