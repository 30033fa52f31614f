//! Declarative text profiles (placeholder: being written).
