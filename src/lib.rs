//! Examples and end-to-end tests for intralb.
