//! Scenarios through the product filters with their shipped policies.
