//! Procedural macros for intralb (in progress).
