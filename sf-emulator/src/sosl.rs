//! SOSL and parameterized search.
